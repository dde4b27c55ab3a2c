/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The machine: the one context struct every subsystem receives. */
#ifndef SYSTEM_MACHINE_H
#define SYSTEM_MACHINE_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

#include "system/cpu-throttle.h"
#include "system/runstate.h"

typedef struct MemoryBackend MemoryBackend;
typedef struct AccelOps AccelOps;
typedef struct SerialState SerialState;
typedef struct Monitor Monitor;
typedef struct MigrationState MigrationState;
typedef struct Machine Machine;

#define MACHINE_PAGE_SIZE 4096ULL
#define MACHINE_MAX_VCPUS 8
/* RAM above this guest-physical address is relocated above 4 GiB (PCI hole). */
#define MACHINE_LOW_RAM_END 0xC0000000ULL
#define MACHINE_HIGH_RAM_START 0x100000000ULL

/*
 * A contiguous piece of host memory that backs guest RAM. Migration names it in
 * the stream ("pc.ram"), the snapshot write-protects it, the accelerator maps it.
 */
typedef struct RamBlock {
    char *name;              /* "pc.ram" */
    MemoryBackend *backend;  /* owns the mapping */
    uint8_t *host;           /* start of the mapping */
    uint64_t size;           /* bytes, a multiple of MACHINE_PAGE_SIZE */
    uint64_t page_size;      /* backing page size (4 KiB or the huge page size) */
} RamBlock;

/* Where a piece of a RAM block appears in guest-physical address space. */
typedef struct GuestRamRange {
    uint64_t gpa;
    uint64_t size;
    RamBlock *block;
    uint64_t offset;         /* into block */
} GuestRamRange;

typedef enum {
    ACCEL_KIND_KVM,
    ACCEL_KIND_TEST,
    ACCEL_KIND_TCG,               /* recognised as QEMU's, never available */
} AccelKind;

/* How many accelerators -accel options and -machine accel=a:b:c may name. */
#define MACHINE_MAX_ACCELS 8

/* The parsed command line, as the rest of the program needs it. */
/* One -global migration.x-CAP=on|off, in command-line order. */
typedef struct MachineCapabilitySetting {
    int cap;                      /* MigrationCapability */
    bool on;
} MachineCapabilitySetting;

typedef struct MachineConfig {
    uint64_t ram_size;            /* -m, bytes */
    bool ram_size_given;          /* -m was on the command line */
    unsigned smp;                 /* -smp */
    AccelKind accels[MACHINE_MAX_ACCELS]; /* -accel / -machine accel=, tried in order */
    unsigned nr_accels;                   /* 0 until an option names one; then >= 1 */
    bool accel_from_machine;              /* named by -machine accel= (not -accel) */
    bool vcpu_slice_set;          /* -accel ...,x-vcpu-slice-us= was given */
    unsigned vcpu_slice_us;       /* its value; 0: the kernel's own slice */
    char *kernel;                 /* -kernel */
    char *initrd;                 /* -initrd */
    char *append;                 /* -append */
    char *name;                   /* -name */
    char *pidfile;                /* -pidfile */
    bool daemonize;               /* -daemonize */
    bool start_paused;            /* -S */
    char *incoming;               /* -incoming URI|defer, or NULL */
    char *restore_mode;           /* -global migration.restore-mode=, or NULL */
    char *restore_base;           /* -global migration.restore-base=, or NULL */
    GArray *capabilities;         /* MachineCapabilitySetting: -global migration.x-CAP=on|off */
    GPtrArray *qmp;               /* -qmp specs (char *) */
    GPtrArray *monitors;          /* -monitor specs (char *) */
    char *serial;                 /* -serial stdio|file:PATH|null|none */
    char *memory_backend_id;      /* -machine memory-backend=ID */
    GPtrArray *objects;           /* MemoryBackendOptions * from -object */
    bool thp;                     /* -machine thp=on|off (frostvm) */
    bool dump_guest_core;         /* -machine dump-guest-core=on|off (default on) */
    char *test_accel_args;        /* -accel test,args=... (pattern for the writer threads) */
    unsigned debug;               /* -d */

    /* What a manager such as libvirt passes (system/cmdline-*.c). */
    bool machine_none;            /* -machine none: no guest, monitors only (probing) */
    bool nodefaults;              /* -nodefaults: no default serial port */
    bool nographic;               /* -nographic: COM1 on stdio unless given */
    bool no_shutdown;             /* -no-shutdown: a guest power-off stops, not exits */
    bool debug_threads;           /* -name debug-threads=on: "CPU N/ACCEL" thread names */
    bool msg_timestamp;           /* -msg timestamp=on: time-stamped error messages */
    char *uuid;                   /* -uuid, canonical text, or NULL */
    unsigned sockets, cores, threads, maxcpus;  /* -smp topology (filled in) */
    GPtrArray *chardevs;          /* ChardevOptions * (system/chardev.h) */
    GPtrArray *mons;              /* MonOptions * */
    GArray *fdsets;               /* FdsetEntry (system/fdset.h) */
    char *serial_chardev;         /* -device isa-serial,chardev=ID (COM1), or NULL */
    char *serial_device_id;       /* its id= ("serial0"), or NULL */
    GPtrArray *secrets;           /* SecretObject * (-object secret) */
} MachineConfig;

/* A -object secret: kept for the life of the process, as QEMU keeps it. */
typedef struct SecretObject {
    char *id;
    char *format;                 /* "raw" or "base64" */
    GBytes *data;                 /* from data= or file= (decoded for base64) */
} SecretObject;

struct Machine {
    MachineConfig *config;
    GMainContext *main_context;   /* the main loop's context: monitors, events */
    GMainLoop *main_loop;

    GPtrArray *ram_blocks;        /* RamBlock *; today exactly one, "pc.ram" */
    GuestRamRange ram_ranges[2];
    unsigned nr_ram_ranges;
    uint64_t ram_size;
    unsigned smp;

    const AccelOps *accel;        /* the accelerator in use (the first that worked) */
    void *accel_state;            /* owned by the accelerator */
    char *accel_fallback_note;    /* why earlier accelerators were passed over, or NULL */
    AccelKind none_accel;         /* -machine none: the accelerator a guest would get */
    bool none_accel_usable;       /* -machine none: false when none of the list works */

    GPtrArray *chardevs;          /* Chardev *, opened backends (system/chardev.c) */
    SerialState *serial;
    int serial_out_fd;            /* COM1's output and input, or -1 */
    int serial_in_fd;
    struct IoportTable *ioports;  /* port I/O dispatch table (hw/ioport.c) */
    Monitor *monitor;             /* QMP/HMP servers; events go through it */
    MigrationState *migration;
    CpuThrottle throttle;         /* auto-converge slows the vCPUs through this */
    /*
     * atomic: the thread that pauses the vCPUs runs on a CPU no vCPU is on,
     * so it may spin while they park (machine_pause_wait_spin()).
     */
    bool pause_spin;
    GArray *vmstate_handlers;     /* VMStateHandler, in registration order */

    /* Run state: see system/runstate.h. Changed only through runstate_*(). */
    GMutex runstate_lock;         /* guards the fields below; never held across a pause */
    GMutex transition_lock;       /* serialises stop/start from different threads */
    RunState runstate;
    bool vcpus_started;           /* accel->start_vcpus() has run */
    bool shutdown_requested;
    char *shutdown_reason;
    int exit_status;              /* what main returns */
};

/*
 * Whether the next pauses may spin while the vCPUs park: only where the
 * pausing thread runs on a CPU no vCPU needs (a snapshot's placed pause).
 */
void machine_set_pause_spin(Machine *m, bool spin);
bool machine_pause_may_spin(Machine *m);
/*
 * For the accelerators' pause, after the kick and before sleeping: with
 * pause_spin set, spin up to 0.5 ms (without the accelerator's lock) until
 * *@parked + @self reaches @threads. A pauser that sleeps is woken on its
 * own CPU, halted meanwhile, and this host's wake-up of it took 0.1-0.3 ms.
 */
void machine_pause_wait_spin(Machine *m, const unsigned *parked, unsigned self,
                             unsigned threads);

/* Translate a guest-physical range to host memory; NULL if it is not all RAM. */
void *machine_gpa_to_host(Machine *m, uint64_t gpa, uint64_t len);

/* The RAM block called @name, or NULL. */
RamBlock *machine_find_ram_block(Machine *m, const char *name);

/*
 * A machine with nothing in it yet (no RAM, accelerator or devices), in
 * prelaunch; machine_free() frees it at any stage of building.
 */
Machine *machine_alloc(MachineConfig *config);

/*
 * Build the machine from its config: RAM (from the memory backend), the RAM
 * layout, the accelerator, the devices. Does not load a kernel or start vCPUs.
 */
Machine *machine_new(MachineConfig *config, GError **errp);

/*
 * The empty machine of -machine none (system/machine-none.c): no RAM, no
 * vCPUs, no devices; only monitors, so a manager can ask what frostvm offers.
 * The accelerator list is checked for usability without creating a VM.
 */
Machine *machine_new_none(MachineConfig *config, GError **errp);

/* Whether @m has a guest (false for -machine none). */
static inline bool machine_has_guest(const Machine *m)
{
    return m->accel != NULL;
}

/* Load -kernel/-append into guest RAM and set the boot vCPU's entry state. */
bool machine_load_kernel(Machine *m, GError **errp);

/* Stop vCPUs, free devices, accelerator and RAM. */
void machine_free(Machine *m);

#endif
