/* session: to be written */
#include "config.h"
