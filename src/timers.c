/* timers: to be written */
#include "config.h"
