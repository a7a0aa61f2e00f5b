/* The virtual machine: KVM file descriptors, guest memory, buses, platform
 * devices and vCPUs, and the reason it stopped.  One per ferry process. */
#ifndef FERRY_VM_H
#define FERRY_VM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "ferry/bus.h"
#include "ferry/err.h"
#include "ferry/log.h"
#include "ferry/mem.h"

/* Exit status of `ferry run`, documented in ferry --help and the README. */
enum ferry_exit {
	FERRY_EXIT_POWEROFF = 0,  /* the guest powered off */
	FERRY_EXIT_ERROR = 1,     /* bad flags, no KVM, unbootable kernel... */
	FERRY_EXIT_RESET = 2,     /* the guest asked for a reset */
	FERRY_EXIT_CRASH = 3,     /* triple fault, KVM internal error, failed entry */
	FERRY_EXIT_STOPPED = 4,   /* stopped from the host (escape key, timeout) */
};

enum serial_mode { SERIAL_STDIO, SERIAL_FILE, SERIAL_NONE };
enum virtio_transport_kind { VIRTIO_TRANSPORT_PCI, VIRTIO_TRANSPORT_MMIO };
enum console_mode { CONSOLE_SERIAL, CONSOLE_VIRTIO };

enum blk_engine { BLK_ENGINE_IO_URING, BLK_ENGINE_AIO, BLK_ENGINE_SYNC };
enum blk_cache { BLK_CACHE_WRITEBACK, BLK_CACHE_NONE };

/* --disk path=FILE[,readonly=on][,cache=none|writeback]
 *        [,engine=io_uring|aio|sync][,serial=ID][,queues=N][,shared=on] */
struct disk_config {
	const char *path;          /* malloc'd by disk_config_parse */
	bool readonly;
	bool shared;               /* skip the OFD write lock (migration) */
	enum blk_cache cache;
	enum blk_engine engine;
	char serial[21];           /* VIRTIO_BLK_ID_BYTES + NUL */
	unsigned int queues;
	/* iscsi://[USER@]HOST[:PORT]/TARGET-IQN/LUN paths (virtio/blk_iscsi.c):
	 * [,password-file=PATH][,initiator=IQN][,timeout=S][,queue-depth=N]
	 * [,reservation=on|off|takeover] */
	char iscsi_password_file[4096];  /* "" for none */
	char iscsi_initiator[224];     /* "" for the per-process default */
	unsigned int iscsi_timeout_s;  /* 0: requests wait for the target forever */
	unsigned int iscsi_queue_depth; /* commands at the target, 0: default */
	/* SCSI-3 persistent-reservation fencing (virtio/blk_iscsi_pr.c):
	 * reservation=on|off|takeover, on by default unless readonly;
	 * reservation_set: given explicitly.  takeover: PREEMPT whatever key
	 * holds the LUN at start-up (a crashed ferry's). */
	bool reservation;
	bool reservation_set;
	bool reservation_takeover;
};

/* --net tap=NAME[,mac=MAC][,queues=N] */
struct net_config {
	char tap[16];              /* IFNAMSIZ */
	uint8_t mac[6];
	bool has_mac;
	unsigned int queues;
};

#define VM_MAX_DISKS 8
#define VM_MAX_NETS  4

struct vm_config {
	const char *name;
	const char *kernel;
	const char *initrd;
	const char *cmdline;
	uint64_t mem_size;
	bool hugepages;
	enum gm_backing backing;
	bool prealloc;              /* --memory ...,prealloc=on */
	unsigned int cpus;
	enum serial_mode serial;
	const char *serial_path;
	enum log_level log_level;
	unsigned int shutdown_timeout_s;
	const char *api_path;       /* control socket, NULL for none */
	const char *metrics;        /* unix:PATH or file:PATH, NULL for none */
	const char *incoming;       /* tcp:ADDR:PORT: receive a migration */
	char restore_uri[4096 + 8]; /* "file:PATH" that --restore points incoming at */

	/* Least privilege (src/privs.c, src/seccomp.c). */
	const char *user;           /* --user USER[:GROUP], NULL: stay */
	const char *chroot_dir;     /* --chroot DIR */
	bool allow_root;            /* keep root's capabilities */
	int seccomp;                /* enum seccomp_mode (seccomp.h) */

	/* The migration channel's credentials (migrate/tls.c): files. */
	const char *tls_psk;        /* --tls-psk FILE */
	const char *tls_cert;       /* --tls-cert FILE */
	const char *tls_key;        /* --tls-key FILE */
	const char *tls_ca;         /* --tls-ca FILE */
	bool insecure;              /* plain TCP allowed, and logged */

	enum virtio_transport_kind transport;
	struct disk_config disks[VM_MAX_DISKS];
	unsigned int nr_disks;
	struct net_config nets[VM_MAX_NETS];
	unsigned int nr_nets;
	bool rng;
	enum console_mode console;
};

/* Why the VM stopped; the first reason set wins. */
enum vm_stop_reason {
	VM_STOP_NONE,
	VM_STOP_POWEROFF,
	VM_STOP_RESET,
	VM_STOP_CRASH,
	VM_STOP_HOST,
	VM_STOP_ERROR,
	VM_STOP_MIGRATED,           /* the destination runs it now */
};

struct vcpu;
struct uart;
struct i8042;
struct rtc;
struct pm;
struct pci_bus;
struct debugport;

struct vm {
	const struct vm_config *cfg;
	int kvm_fd;
	int vm_fd;
	int run_size;               /* size of each vCPU's kvm_run mapping */
	struct guest_mem mem;
	struct bus pio;
	struct bus mmio;

	unsigned int nr_vcpus;
	struct vcpu **vcpus;
	struct kvm_cpuid2 *cpuid;   /* supported CPUID, patched per vCPU */

	int serial_fd;              /* UART output, -1 for none */
	struct uart *uart;
	struct i8042 *i8042;
	struct rtc *rtc;
	struct pm *pm;
	struct pci_bus *pci;
	struct debugport *debugport;

	struct loop *loop;          /* the event loop (host I/O, virtio queues) */

	/* GSI routing: the irqchip pins plus MSI routes (irqchip.c). */
	pthread_mutex_t irq_lock;
	struct kvm_irq_routing *routing;
	unsigned int next_msi_gsi;
	uint32_t line_sources[24];  /* per IOAPIC pin: sources asserting it */
	unsigned int next_line_source;
	unsigned int next_pci_slot; /* virtio-pci devices take slots 1, 2, ... */
	unsigned int next_mmio_dev; /* virtio-mmio devices, in order */
	uint64_t next_pci_mmio;     /* BAR allocator in the PCI MMIO window */
	char extra_cmdline[512];    /* appended to --cmdline (virtio-mmio) */
	struct virtio_dev *virtio[VM_MAX_DISKS + VM_MAX_NETS + 2];
	unsigned int nr_virtio;
	char virtio_names[VM_MAX_DISKS + VM_MAX_NETS + 2][16];

	int stop_efd;               /* signalled once when the VM stops */
	int stop_reason;            /* enum vm_stop_reason, set atomically */

	/* Pausing: vCPU threads park on run_cond while pause_requested. */
	pthread_mutex_t run_lock;
	pthread_cond_t run_cond;
	bool pause_requested;
	unsigned int parked;        /* vCPUs parked */
	unsigned int exited;        /* vCPU threads that have ended */
	uint64_t start_ns;          /* when vm_start ran, for uptime */
	/* Migration's auto-converge: percent of time each vCPU sleeps (0-99),
	 * read atomically by the vCPU threads. */
	unsigned int throttle_pct;
};

/* Open KVM, build the machine and load the kernel.  Nothing runs yet.
 * Devices register their host I/O on @loop. */
int vm_create(struct vm *vm, const struct vm_config *cfg, struct loop *loop,
	      struct ferr *e);
/* Start one thread per vCPU. */
int vm_start(struct vm *vm, struct ferr *e);
/* Ask the VM to stop for @reason (any thread; the first reason sticks) and
 * kick every vCPU out of KVM_RUN. */
void vm_request_stop(struct vm *vm, enum vm_stop_reason reason);
/* Stop every vCPU outside KVM_RUN and wait until all are parked: guest
 * memory and vCPU state are then stable.  -ESHUTDOWN if the VM is stopping.
 * Called from the event loop thread only. */
int vm_pause(struct vm *vm);
void vm_resume(struct vm *vm);
bool vm_is_paused(const struct vm *vm);
/* Wait for the vCPU threads after a stop. */
void vm_join(struct vm *vm);
void vm_destroy(struct vm *vm);
/* Turn KVM's dirty logging on every RAM slot on or off (migration). */
int vm_set_dirty_log(struct vm *vm, bool on);
/* Map the stop reason to ferry's exit status. */
int vm_exit_status(const struct vm *vm);

/* KVM's view of a GSI: raise or lower it (KVM_IRQ_LINE). */
void vm_irq_line(void *vm, unsigned int gsi, int level);

/* Interrupt plumbing (irqchip.c).  The routing table keeps the PIC and
 * IOAPIC pins (GSI 0-23) and adds one GSI per MSI(-X) vector. */
int vm_irq_routing_init(struct vm *vm);
void vm_irq_routing_destroy(struct vm *vm);
/* Level-triggered lines shared by several devices (PCI INTx, virtio-mmio):
 * each device gets a source id, and the pin is high while any source
 * asserts it.  KVM_IRQ_LINE alone would let one device lower a line that
 * another still holds. */
int vm_irq_source_alloc(struct vm *vm);
void vm_irq_shared_set(struct vm *vm, unsigned int gsi, int source, int level);
/* A new MSI route; returns its GSI or a negative errno. */
int vm_msi_route_add(struct vm *vm, uint64_t addr, uint32_t data);
/* Point an MSI route elsewhere (the guest reprogrammed the vector). */
int vm_msi_route_set(struct vm *vm, unsigned int gsi, uint64_t addr, uint32_t data);
/* Deliver GSI @gsi whenever @fd is written (KVM_IRQFD). */
int vm_irqfd(struct vm *vm, int fd, unsigned int gsi, bool assign);
/* Let KVM complete guest writes to [addr, addr+len) by signalling @fd
 * instead of exiting (KVM_IOEVENTFD).  @datamatch < 0: any value. */
int vm_ioeventfd(struct vm *vm, int fd, uint64_t addr, uint32_t len, bool pio,
		 int64_t datamatch, bool assign);

#endif
