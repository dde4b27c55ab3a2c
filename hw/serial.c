/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The 16550A UART on COM1: registers, receive FIFO, interrupt line, host input and output. */
#define G_LOG_DOMAIN "frostvm-serial"
#include "hw/serial.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "accel/kvm.h"
#include "hw/ioport.h"
#include "migration/vmstate.h"
#include "system/machine.h"
#include "util/error.h"

#define SERIAL_STATE_VERSION 1

/* Register offsets from the base port. */
enum {
    REG_RBR_THR_DLL = 0,
    REG_IER_DLM = 1,
    REG_IIR_FCR = 2,
    REG_LCR = 3,
    REG_MCR = 4,
    REG_LSR = 5,
    REG_MSR = 6,
    REG_SCR = 7,
};

#define IER_RDI   0x01    /* received data available */
#define IER_THRI  0x02    /* transmitter holding register empty */
#define IER_RLSI  0x04    /* receiver line status */
#define IER_MSI   0x08    /* modem status */

#define IIR_NO_INT  0x01
#define IIR_MSI     0x00
#define IIR_THRI    0x02
#define IIR_RDI     0x04
#define IIR_RLSI    0x06
#define IIR_CTI     0x0c  /* character timeout: data below the trigger level */
#define IIR_FIFO_ON 0xc0

#define FCR_ENABLE    0x01
#define FCR_CLEAR_RX  0x02
#define FCR_CLEAR_TX  0x04
#define FCR_KEPT_BITS 0xc9 /* enable, DMA mode, trigger level */

#define LCR_DLAB  0x80

#define MCR_DTR   0x01
#define MCR_RTS   0x02
#define MCR_OUT1  0x04
#define MCR_OUT2  0x08
#define MCR_LOOP  0x10

#define LSR_DR    0x01
#define LSR_OE    0x02
#define LSR_THRE  0x20
#define LSR_TEMT  0x40

#define MSR_DELTA_MASK 0x0f
#define MSR_CTS   0x10
#define MSR_DSR   0x20
#define MSR_RI    0x40
#define MSR_DCD   0x80

typedef struct SerialInputSource {
    GSource source;
    SerialState *serial;
    gpointer tag;
} SerialInputSource;

struct SerialState {
    Machine *m;
    GMutex lock;              /* vCPU threads do port I/O, the main loop feeds input */
    int out_fd;
    int in_fd;
    bool drop_when_full;      /* a terminal nobody reads: discard rather than stall */

    uint8_t dll, dlm;
    uint8_t ier, lcr, mcr, scr, fcr;
    uint8_t lsr_errors;       /* sticky LSR bits, cleared by reading LSR */
    uint8_t msr;
    bool thr_interrupt;       /* THR-empty interrupt pending */
    uint8_t rx[SERIAL_FIFO_SIZE];
    unsigned rx_head, rx_count;
    bool irq_level;

    GMainContext *context;
    SerialInputSource *input;
    bool input_throttled;     /* FIFO full: the fd is not watched */
    GSource *unthrottle;      /* pending idle source that watches it again */
};

static unsigned serial_rx_capacity(SerialState *s)
{
    return (s->fcr & FCR_ENABLE) ? SERIAL_FIFO_SIZE : 1;
}

static unsigned serial_rx_trigger(SerialState *s)
{
    static const unsigned levels[4] = { 1, 4, 8, 14 };
    return (s->fcr & FCR_ENABLE) ? levels[s->fcr >> 6] : 1;
}

static void serial_rx_push(SerialState *s, uint8_t byte)
{
    if (s->rx_count >= serial_rx_capacity(s)) {
        s->lsr_errors |= LSR_OE;
        return;
    }
    s->rx[(s->rx_head + s->rx_count) % SERIAL_FIFO_SIZE] = byte;
    s->rx_count++;
}

static uint8_t serial_rx_pop(SerialState *s)
{
    uint8_t byte;

    if (!s->rx_count) {
        return 0;
    }
    byte = s->rx[s->rx_head];
    s->rx_head = (s->rx_head + 1) % SERIAL_FIFO_SIZE;
    s->rx_count--;
    return byte;
}

static void serial_rx_clear(SerialState *s)
{
    s->rx_head = s->rx_count = 0;
}

/* The highest-priority pending interrupt, as IIR bits 3:0 encode it. */
static uint8_t serial_pending(SerialState *s)
{
    if ((s->ier & IER_RLSI) && (s->lsr_errors & LSR_OE)) {
        return IIR_RLSI;
    }
    if ((s->ier & IER_RDI) && s->rx_count) {
        return s->rx_count >= serial_rx_trigger(s) ? IIR_RDI : IIR_CTI;
    }
    if ((s->ier & IER_THRI) && s->thr_interrupt) {
        return IIR_THRI;
    }
    if ((s->ier & IER_MSI) && (s->msr & MSR_DELTA_MASK)) {
        return IIR_MSI;
    }
    return IIR_NO_INT;
}

/*
 * Drive IRQ 4 from the pending state. Like QEMU's UART (and unlike a real
 * board) the line is not gated by MCR.OUT2, so guests written against QEMU
 * get their interrupts.
 */
static void serial_update_irq(SerialState *s)
{
    bool level = serial_pending(s) != IIR_NO_INT;

    if (level != s->irq_level) {
        s->irq_level = level;
        kvm_set_irq(s->m, SERIAL_COM1_IRQ, level);
    }
}

/* In loopback the modem inputs follow the modem outputs. */
static void serial_update_msr(SerialState *s)
{
    uint8_t status;

    if (s->mcr & MCR_LOOP) {
        status = ((s->mcr & MCR_RTS) ? MSR_CTS : 0) | ((s->mcr & MCR_DTR) ? MSR_DSR : 0) |
                 ((s->mcr & MCR_OUT1) ? MSR_RI : 0) | ((s->mcr & MCR_OUT2) ? MSR_DCD : 0);
    } else {
        status = MSR_DCD | MSR_DSR | MSR_CTS;   /* a terminal is always there */
    }
    /* Delta bits: CTS, DSR, trailing edge of RI, DCD. */
    s->msr |= ((status ^ s->msr) >> 4) & 0x0b;
    if ((s->msr & MSR_RI) && !(status & MSR_RI)) {
        s->msr |= 0x04;
    }
    s->msr = (s->msr & MSR_DELTA_MASK) | status;
}

static void serial_transmit(SerialState *s, uint8_t byte)
{
    if (s->mcr & MCR_LOOP) {
        serial_rx_push(s, byte);
        return;
    }
    while (s->out_fd >= 0) {
        ssize_t n = write(s->out_fd, &byte, 1);
        if (n == 1) {
            break;
        }
        if (n < 0 && (errno == EAGAIN || errno == EIO) && s->drop_when_full) {
            /* Full, or no terminal on the other side (EIO once its last user left). */
            break;
        }
        if (n < 0 && errno == EAGAIN) {
            struct pollfd p = { .fd = s->out_fd, .events = POLLOUT };
            poll(&p, 1, -1);
        } else if (n < 0 && errno != EINTR) {
            /* The reader went away (EPIPE, ...): the guest keeps running. */
            g_warning("serial output: %s; discarding further output",
                      g_strerror(errno));
            s->out_fd = -1;
        }
    }
}

static gboolean serial_unthrottle_cb(gpointer opaque);

/* A vCPU freed FIFO space: watch the input fd again, from the main loop. */
static void serial_schedule_unthrottle(SerialState *s)
{
    if (!s->input_throttled || s->unthrottle || !s->input) {
        return;
    }
    s->unthrottle = g_idle_source_new();
    g_source_set_callback(s->unthrottle, serial_unthrottle_cb, s, NULL);
    g_source_attach(s->unthrottle, s->context);
}

static uint32_t serial_port_read(void *opaque, uint16_t port, unsigned size)
{
    SerialState *s = opaque;
    uint8_t value = 0xff;

    g_mutex_lock(&s->lock);
    switch (port - SERIAL_COM1_BASE) {
    case REG_RBR_THR_DLL:
        if (s->lcr & LCR_DLAB) {
            value = s->dll;
        } else {
            value = serial_rx_pop(s);
            serial_schedule_unthrottle(s);
        }
        break;
    case REG_IER_DLM:
        value = (s->lcr & LCR_DLAB) ? s->dlm : s->ier;
        break;
    case REG_IIR_FCR:
        value = serial_pending(s);
        if (value == IIR_THRI) {
            s->thr_interrupt = false;   /* reading IIR acknowledges THRE */
        }
        value |= (s->fcr & FCR_ENABLE) ? IIR_FIFO_ON : 0;
        break;
    case REG_LCR:
        value = s->lcr;
        break;
    case REG_MCR:
        value = s->mcr;
        break;
    case REG_LSR:
        /* Transmission is instantaneous: THR and the shifter are always empty. */
        value = LSR_THRE | LSR_TEMT | s->lsr_errors | (s->rx_count ? LSR_DR : 0);
        s->lsr_errors = 0;
        break;
    case REG_MSR:
        value = s->msr;
        s->msr &= ~MSR_DELTA_MASK;
        break;
    case REG_SCR:
        value = s->scr;
        break;
    }
    serial_update_irq(s);
    g_mutex_unlock(&s->lock);
    return value;
}

static void serial_port_write(void *opaque, uint16_t port, unsigned size, uint32_t v)
{
    SerialState *s = opaque;
    uint8_t value = v;

    g_mutex_lock(&s->lock);
    switch (port - SERIAL_COM1_BASE) {
    case REG_RBR_THR_DLL:
        if (s->lcr & LCR_DLAB) {
            s->dll = value;
        } else {
            serial_transmit(s, value);
            s->thr_interrupt = true;    /* empty again at once */
        }
        break;
    case REG_IER_DLM:
        if (s->lcr & LCR_DLAB) {
            s->dlm = value;
        } else {
            /* Enabling THRE interrupts with THR empty raises one right away. */
            if ((value & IER_THRI) && !(s->ier & IER_THRI)) {
                s->thr_interrupt = true;
            }
            s->ier = value & 0x0f;
        }
        break;
    case REG_IIR_FCR:
        if ((value ^ s->fcr) & FCR_ENABLE) {
            serial_rx_clear(s);
        }
        if (value & FCR_CLEAR_RX) {
            serial_rx_clear(s);
            s->lsr_errors &= ~LSR_OE;
        }
        s->fcr = value & FCR_KEPT_BITS;
        if (!(s->fcr & FCR_ENABLE)) {
            s->fcr = 0;
        }
        serial_schedule_unthrottle(s);
        break;
    case REG_LCR:
        s->lcr = value;
        break;
    case REG_MCR:
        s->mcr = value & 0x1f;
        serial_update_msr(s);
        break;
    case REG_LSR:
    case REG_MSR:
        break;                          /* read-only here */
    case REG_SCR:
        s->scr = value;
        break;
    }
    serial_update_irq(s);
    g_mutex_unlock(&s->lock);
}

/* Main loop: the input fd is readable. */
static gboolean serial_input_dispatch(GSource *source, GSourceFunc cb, gpointer data)
{
    SerialInputSource *in = (SerialInputSource *)source;
    SerialState *s = in->serial;
    uint8_t buf[SERIAL_FIFO_SIZE];
    unsigned room;
    ssize_t n;

    g_mutex_lock(&s->lock);
    room = serial_rx_capacity(s) - s->rx_count;
    if (!room) {
        /* Leave the bytes in the fd until the guest reads: no overrun, no spin. */
        g_source_modify_unix_fd(source, in->tag, 0);
        s->input_throttled = true;
        g_mutex_unlock(&s->lock);
        return G_SOURCE_CONTINUE;
    }
    n = read(s->in_fd, buf, room);
    if (n > 0) {
        for (ssize_t i = 0; i < n; i++) {
            serial_rx_push(s, buf[i]);
        }
        serial_update_irq(s);
    } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        /* End of input (or a broken fd): stop watching, the guest runs on. */
        g_source_modify_unix_fd(source, in->tag, 0);
    }
    g_mutex_unlock(&s->lock);
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs serial_input_funcs = {
    .dispatch = serial_input_dispatch,
};

static gboolean serial_unthrottle_cb(gpointer opaque)
{
    SerialState *s = opaque;

    g_mutex_lock(&s->lock);
    if (s->input_throttled && s->rx_count < serial_rx_capacity(s)) {
        g_source_modify_unix_fd(&s->input->source, s->input->tag, G_IO_IN);
        s->input_throttled = false;
    }
    g_source_unref(s->unthrottle);
    s->unthrottle = NULL;
    g_mutex_unlock(&s->lock);
    return G_SOURCE_REMOVE;
}

static bool serial_state_save(void *opaque, GByteArray *buf, GError **errp)
{
    SerialState *s = opaque;
    uint8_t regs[10];

    g_mutex_lock(&s->lock);
    regs[0] = s->dll;
    regs[1] = s->dlm;
    regs[2] = s->ier;
    regs[3] = s->lcr;
    regs[4] = s->mcr;
    regs[5] = s->scr;
    regs[6] = s->fcr;
    regs[7] = s->lsr_errors;
    regs[8] = s->msr;
    regs[9] = s->thr_interrupt;
    vmstate_put_bytes(buf, regs, sizeof(regs));
    vmstate_put_u32(buf, s->rx_count);
    for (unsigned i = 0; i < s->rx_count; i++) {
        uint8_t byte = s->rx[(s->rx_head + i) % SERIAL_FIFO_SIZE];
        vmstate_put_bytes(buf, &byte, 1);
    }
    g_mutex_unlock(&s->lock);
    return true;
}

static bool serial_state_load(void *opaque, const uint8_t *data, size_t len,
                              uint32_t version, GError **errp)
{
    SerialState *s = opaque;
    uint8_t regs[10], rx[SERIAL_FIFO_SIZE];
    uint32_t count;
    VMStateReader r;

    vmstate_reader_init(&r, data, len);
    vmstate_get_bytes(&r, regs, sizeof(regs));
    count = vmstate_get_u32(&r);
    if (count > SERIAL_FIFO_SIZE) {
        error_setg(errp, "device state 'serial': receive FIFO holds %u bytes, the "
                   "16550A has %d", count, SERIAL_FIFO_SIZE);
        return false;
    }
    vmstate_get_bytes(&r, rx, count);
    if (!vmstate_reader_finish(&r, "serial", errp)) {
        return false;
    }

    g_mutex_lock(&s->lock);
    s->dll = regs[0];
    s->dlm = regs[1];
    s->ier = regs[2] & 0x0f;
    s->lcr = regs[3];
    s->mcr = regs[4] & 0x1f;
    s->scr = regs[5];
    s->fcr = regs[6] & FCR_KEPT_BITS;
    s->lsr_errors = regs[7] & LSR_OE;
    s->msr = regs[8];
    s->thr_interrupt = regs[9];
    serial_rx_clear(s);
    for (uint32_t i = 0; i < count; i++) {
        serial_rx_push(s, rx[i]);
    }
    s->irq_level = false;
    kvm_set_irq(s->m, SERIAL_COM1_IRQ, false);
    serial_update_irq(s);
    serial_schedule_unthrottle(s);
    g_mutex_unlock(&s->lock);
    return true;
}

SerialState *serial_new(Machine *m, int out_fd, int in_fd, GError **errp)
{
    SerialState *s;
    VMStateHandler h = {
        .name = "serial", .instance = 0, .version = SERIAL_STATE_VERSION,
        .save = serial_state_save, .load = serial_state_load,
    };

    if (out_fd >= 0 && fcntl(out_fd, F_GETFL) < 0) {
        error_setg_errno(errp, errno, "serial: output file descriptor %d", out_fd);
        return NULL;
    }
    if (in_fd >= 0 && fcntl(in_fd, F_GETFL) < 0) {
        error_setg_errno(errp, errno, "serial: input file descriptor %d", in_fd);
        return NULL;
    }
    s = g_new0(SerialState, 1);
    h.opaque = s;
    g_mutex_init(&s->lock);
    s->m = m;
    s->out_fd = out_fd;
    s->in_fd = in_fd;
    s->dll = 0x0c;                /* 9600 baud, what a BIOS would leave */
    s->lcr = 0x03;                /* 8N1 */
    s->thr_interrupt = false;
    serial_update_msr(s);
    s->msr &= ~MSR_DELTA_MASK;
    s->context = m->main_context ? g_main_context_ref(m->main_context)
                                 : g_main_context_ref(g_main_context_default());

    if (in_fd >= 0) {
        s->input = (SerialInputSource *)g_source_new(&serial_input_funcs,
                                                     sizeof(SerialInputSource));
        s->input->serial = s;
        s->input->tag = g_source_add_unix_fd(&s->input->source, in_fd, G_IO_IN);
        g_source_set_name(&s->input->source, "serial input");
        g_source_attach(&s->input->source, s->context);
    }
    ioport_register(m, SERIAL_COM1_BASE, 8, serial_port_read, serial_port_write, s);
    vmstate_register(m, &h);
    return s;
}

void serial_set_drop_when_full(SerialState *s, bool drop)
{
    s->drop_when_full = drop;
}

void serial_free(SerialState *s)
{
    if (!s) {
        return;
    }
    if (s->unthrottle) {
        g_source_destroy(s->unthrottle);
        g_source_unref(s->unthrottle);
    }
    if (s->input) {
        g_source_destroy(&s->input->source);
        g_source_unref(&s->input->source);
    }
    g_main_context_unref(s->context);
    g_mutex_clear(&s->lock);
    g_free(s);
}
