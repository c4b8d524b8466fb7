#ifndef SALTUN_SESSION_H
#define SALTUN_SESSION_H
#endif
