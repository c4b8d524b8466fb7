/* transport_udp: to be written */
#include "config.h"
