/* hook: to be written */
#include "config.h"
