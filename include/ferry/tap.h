/* Host tap devices for virtio-net: attach to (or create) a tap interface with
 * virtio-net headers, one fd per queue pair. */
#ifndef FERRY_NET_TAP_H
#define FERRY_NET_TAP_H

#include <stdbool.h>

#include "ferry/err.h"

/* The header ferry exchanges with the tap: struct virtio_net_hdr_mrg_rxbuf. */
#define TAP_VNET_HDR_LEN 12

/* Guest receive offloads, for tap_set_offload() (TUN_F_* values). */
#define TAP_OFFLOAD_CSUM     0x01
#define TAP_OFFLOAD_TSO4     0x02
#define TAP_OFFLOAD_TSO6     0x04
#define TAP_OFFLOAD_TSO_ECN  0x08

/* Open @nfds queues of tap @name (IFF_MULTI_QUEUE when @nfds > 1) into
 * @fds: non-blocking, close-on-exec, vnet header of TAP_VNET_HDR_LEN.  An
 * interface that does not exist is created (needs CAP_NET_ADMIN) and goes
 * away with the last fd.  Fills @e on failure. */
int tap_open(const char *name, unsigned int nfds, int *fds, struct ferr *e);
/* Which offloaded frames the tap may hand us (TAP_OFFLOAD_*). */
int tap_set_offload(int fd, unsigned int offloads);
/* Multi-queue: attach or detach one queue fd (TUNSETQUEUE). */
int tap_set_queue(int fd, bool attached);

#endif
