/* vectors: to be written */
