/* noise: to be written */
#include "config.h"
