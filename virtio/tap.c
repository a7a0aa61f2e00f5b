/* Host tap interfaces for virtio-net: open /dev/net/tun queues with
 * virtio-net headers (IFF_VNET_HDR), creating the interface when it does not
 * exist, and set the offloads the guest accepted. */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "ferry/log.h"
#include "ferry/tap.h"

#define TUN_PATH "/dev/net/tun"

_Static_assert(TAP_OFFLOAD_CSUM == TUN_F_CSUM && TAP_OFFLOAD_TSO4 == TUN_F_TSO4 &&
	       TAP_OFFLOAD_TSO6 == TUN_F_TSO6 && TAP_OFFLOAD_TSO_ECN == TUN_F_TSO_ECN,
	       "TAP_OFFLOAD_* are TUN_F_*");

static int tap_open_one(const char *name, bool mq, bool existed, struct ferr *e)
{
	struct ifreq ifr = { 0 };
	unsigned int features = 0;
	int hdr = TAP_VNET_HDR_LEN;
	int fd, ret;

	fd = open(TUN_PATH, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return ferr_errno(e, -errno, "cannot open %s (load the tun module)", TUN_PATH);
	if (ioctl(fd, TUNGETFEATURES, &features) == 0 &&
	    (!(features & IFF_VNET_HDR) || (mq && !(features & IFF_MULTI_QUEUE)))) {
		ret = ferr_set(e, -EOPNOTSUPP, "the kernel's tun driver lacks %s",
			       mq ? "IFF_MULTI_QUEUE" : "IFF_VNET_HDR");
		goto out;
	}
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | (mq ? IFF_MULTI_QUEUE : 0);
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		ret = -errno;
		if (existed)
			ferr_errno(e, ret, "cannot attach to tap %s (is it a tap%s, owned by this user, and not in use?)",
				   name, mq ? " created with multi_queue" : " without multi_queue");
		else
			ferr_errno(e, ret, "cannot create tap %s (create it first: ip tuntap add %s mode tap%s, or give ferry CAP_NET_ADMIN)",
				   name, name, mq ? " multi_queue" : "");
		goto out;
	}
	/* virtio 1.x: the header always has num_buffers (12 bytes). */
	if (ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0) {
		ret = ferr_errno(e, -errno, "tap %s: cannot set the vnet header size", name);
		goto out;
	}
	/* Until the guest says what it accepts, only plain frames. */
	if (ioctl(fd, TUNSETOFFLOAD, 0) < 0) {
		ret = ferr_errno(e, -errno, "tap %s: cannot clear offloads", name);
		goto out;
	}
	return fd;
out:
	close(fd);
	return ret;
}

int tap_open(const char *name, unsigned int nfds, int *fds, struct ferr *e)
{
	bool existed = if_nametoindex(name) != 0;
	unsigned int i;
	int ret;

	if (nfds == 0)
		return ferr_set(e, -EINVAL, "tap %s: no queues", name);
	for (i = 0; i < nfds; i++) {
		ret = tap_open_one(name, nfds > 1, existed || i > 0, e);
		if (ret < 0)
			goto out;
		fds[i] = ret;
	}
	if (!existed)
		log_info("created tap %s (it goes away when ferry exits; bring it up with: ip link set %s up)",
			 name, name);
	return 0;
out:
	while (i--)
		close(fds[i]);
	return ret;
}

int tap_set_offload(int fd, unsigned int offloads)
{
	return ioctl(fd, TUNSETOFFLOAD, offloads) < 0 ? -errno : 0;
}

int tap_set_queue(int fd, bool attached)
{
	struct ifreq ifr = { .ifr_flags = attached ? IFF_ATTACH_QUEUE : IFF_DETACH_QUEUE };

	return ioctl(fd, TUNSETQUEUE, &ifr) < 0 ? -errno : 0;
}
