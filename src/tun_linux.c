/* tun_linux: to be written */
#include "config.h"
