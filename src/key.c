/* key: to be written */
#include "config.h"
