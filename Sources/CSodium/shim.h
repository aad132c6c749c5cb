#ifndef PBFT_CSODIUM_SHIM_H
#define PBFT_CSODIUM_SHIM_H
#include <sodium.h>
#endif
