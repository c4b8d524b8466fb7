/* wire: to be written */
#include "config.h"
