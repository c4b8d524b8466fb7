/* conf: to be written */
#include "config.h"
