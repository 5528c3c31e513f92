#ifndef NOMOAT_VERSION_H
#define NOMOAT_VERSION_H
#define NOMOAT_VERSION "0.1.0"
#endif
