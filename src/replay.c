/* replay: to be written */
#include "config.h"
