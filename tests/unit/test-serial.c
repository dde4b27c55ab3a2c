/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests for the 16550A UART: registers, divisor latch, FIFO input, output bytes, state. */
#include "hw/serial.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "hw/ioport.h"
#include "migration/vmstate.h"
#include "system/machine.h"

#define COM1 SERIAL_COM1_BASE
#define THR  (COM1 + 0)
#define RBR  (COM1 + 0)
#define DLL  (COM1 + 0)
#define IER  (COM1 + 1)
#define DLM  (COM1 + 1)
#define IIR  (COM1 + 2)
#define FCR  (COM1 + 2)
#define LCR  (COM1 + 3)
#define MCR  (COM1 + 4)
#define LSR  (COM1 + 5)
#define MSR  (COM1 + 6)
#define SCR  (COM1 + 7)

typedef struct Fixture {
    Machine *m;
    SerialState *serial;
    int out[2];           /* guest output: serial writes out[1], test reads out[0] */
    int in[2];            /* guest input: test writes in[1], serial reads in[0] */
} Fixture;

static void fixture_setup(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;

    f->m = g_new0(Machine, 1);
    f->m->main_context = g_main_context_new();
    g_assert_no_errno(pipe2(f->out, O_CLOEXEC | O_NONBLOCK));
    g_assert_no_errno(pipe2(f->in, O_CLOEXEC | O_NONBLOCK));
    f->serial = serial_new(f->m, f->out[1], f->in[0], &err);
    g_assert_no_error(err);
    g_assert_nonnull(f->serial);
}

static void fixture_teardown(Fixture *f, gconstpointer data)
{
    serial_free(f->serial);
    ioport_table_free(f->m);
    g_array_unref(f->m->vmstate_handlers);
    g_main_context_unref(f->m->main_context);
    g_free(f->m);
    for (int i = 0; i < 2; i++) {
        close(f->out[i]);
        close(f->in[i]);
    }
}

static uint8_t inb(Fixture *f, uint16_t port)
{
    return ioport_read(f->m, port, 1);
}

static void outb(Fixture *f, uint16_t port, uint8_t v)
{
    ioport_write(f->m, port, 1, v);
}

/* Let the main loop move what the pipe holds into the FIFO. */
static void pump(Fixture *f)
{
    for (int i = 0; i < 8; i++) {
        g_main_context_iteration(f->m->main_context, FALSE);
    }
}

static void feed(Fixture *f, const char *bytes, size_t len)
{
    g_assert_cmpint(write(f->in[1], bytes, len), ==, (ssize_t)len);
}

static void test_scratch(Fixture *f, gconstpointer data)
{
    outb(f, SCR, 0x5a);
    g_assert_cmphex(inb(f, SCR), ==, 0x5a);
    outb(f, SCR, 0xa5);
    g_assert_cmphex(inb(f, SCR), ==, 0xa5);
}

static void test_divisor_latch(Fixture *f, gconstpointer data)
{
    outb(f, IER, 0x05);
    outb(f, LCR, 0x83);                 /* DLAB on, 8N1 */
    outb(f, DLL, 0x01);                 /* 115200 baud */
    outb(f, DLM, 0x00);
    g_assert_cmphex(inb(f, DLL), ==, 0x01);
    g_assert_cmphex(inb(f, DLM), ==, 0x00);
    g_assert_cmphex(inb(f, LCR), ==, 0x83);
    outb(f, LCR, 0x03);                 /* DLAB off: IER is back */
    g_assert_cmphex(inb(f, IER), ==, 0x05);
    outb(f, LCR, 0x80);
    g_assert_cmphex(inb(f, DLL), ==, 0x01);
}

static void test_lsr_idle(Fixture *f, gconstpointer data)
{
    /* Nothing received, transmitter empty. */
    g_assert_cmphex(inb(f, LSR), ==, 0x60);
    g_assert_cmphex(inb(f, IIR) & 0x0f, ==, 0x01);
}

static void test_output_bytes(Fixture *f, gconstpointer data)
{
    const char *msg = "hello, frostvm\r\n";
    char buf[64] = { 0 };

    for (const char *p = msg; *p; p++) {
        g_assert_cmphex(inb(f, LSR) & 0x20, ==, 0x20);
        outb(f, THR, *p);
    }
    g_assert_cmpint(read(f->out[0], buf, sizeof(buf)), ==, (ssize_t)strlen(msg));
    g_assert_cmpstr(buf, ==, msg);
}

static void test_fifo_input(Fixture *f, gconstpointer data)
{
    outb(f, FCR, 0xc7);                 /* FIFO on, cleared, trigger 14 */
    g_assert_cmphex(inb(f, IIR) & 0xc0, ==, 0xc0);
    feed(f, "abc", 3);
    pump(f);
    g_assert_cmphex(inb(f, LSR) & 0x01, ==, 0x01);
    g_assert_cmphex(inb(f, RBR), ==, 'a');
    g_assert_cmphex(inb(f, RBR), ==, 'b');
    g_assert_cmphex(inb(f, RBR), ==, 'c');
    g_assert_cmphex(inb(f, LSR) & 0x03, ==, 0x00);
}

/* More input than the FIFO holds: it waits in the pipe, nothing is overrun. */
static void test_input_throttle(Fixture *f, gconstpointer data)
{
    char sent[50], got[50];
    size_t n = 0;

    outb(f, FCR, 0x07);
    for (size_t i = 0; i < sizeof(sent); i++) {
        sent[i] = 'A' + i % 26;
    }
    feed(f, sent, sizeof(sent));
    while (n < sizeof(sent)) {
        unsigned batch = 0;
        pump(f);
        while (inb(f, LSR) & 0x01) {
            g_assert_cmpuint(n, <, sizeof(got));
            got[n++] = inb(f, RBR);
            batch++;
        }
        g_assert_cmpuint(batch, >, 0);
        g_assert_cmpuint(batch, <=, SERIAL_FIFO_SIZE);
    }
    g_assert_cmpmem(got, n, sent, sizeof(sent));
    g_assert_cmphex(inb(f, LSR) & 0x02, ==, 0);   /* no overrun */
}

static void test_fifo_disabled_holds_one(Fixture *f, gconstpointer data)
{
    outb(f, FCR, 0x00);
    g_assert_cmphex(inb(f, IIR) & 0xc0, ==, 0x00);
    feed(f, "xy", 2);
    pump(f);
    g_assert_cmphex(inb(f, RBR), ==, 'x');
    g_assert_cmphex(inb(f, LSR) & 0x01, ==, 0);   /* 'y' still in the pipe */
    pump(f);
    g_assert_cmphex(inb(f, RBR), ==, 'y');
}

static void test_interrupt_identification(Fixture *f, gconstpointer data)
{
    outb(f, FCR, 0x01);                           /* FIFO on, trigger 1 */
    outb(f, IER, 0x02);                           /* THR empty */
    g_assert_cmphex(inb(f, IIR), ==, 0xc2);
    g_assert_cmphex(inb(f, IIR), ==, 0xc1);       /* reading IIR acknowledged it */
    outb(f, THR, 'z');
    g_assert_cmphex(inb(f, IIR), ==, 0xc2);       /* sent: empty again */

    outb(f, IER, 0x01);                           /* received data */
    g_assert_cmphex(inb(f, IIR), ==, 0xc1);
    feed(f, "q", 1);
    pump(f);
    g_assert_cmphex(inb(f, IIR), ==, 0xc4);
    inb(f, RBR);
    g_assert_cmphex(inb(f, IIR), ==, 0xc1);

    outb(f, FCR, 0x81);                           /* trigger 8: below it, timeout */
    feed(f, "qq", 2);
    pump(f);
    g_assert_cmphex(inb(f, IIR), ==, 0xcc);
}

static void test_loopback(Fixture *f, gconstpointer data)
{
    char buf[8];

    outb(f, FCR, 0x07);
    outb(f, MCR, 0x10 | 0x02);                    /* loop, RTS */
    g_assert_cmphex(inb(f, MSR) & 0xf0, ==, 0x10);    /* CTS follows RTS */
    outb(f, THR, 'L');
    g_assert_cmphex(inb(f, LSR) & 0x01, ==, 0x01);
    g_assert_cmphex(inb(f, RBR), ==, 'L');
    g_assert_cmpint(read(f->out[0], buf, sizeof(buf)), ==, -1);   /* not sent out */
    outb(f, MCR, 0x03);
    g_assert_cmphex(inb(f, MSR) & 0xf0, ==, 0xb0);
}

static void test_overrun(Fixture *f, gconstpointer data)
{
    outb(f, FCR, 0x07);
    outb(f, MCR, 0x10);
    for (int i = 0; i < SERIAL_FIFO_SIZE + 1; i++) {
        outb(f, THR, i);
    }
    g_assert_cmphex(inb(f, LSR) & 0x03, ==, 0x03);
    g_assert_cmphex(inb(f, LSR) & 0x02, ==, 0x00);   /* cleared by the read */
    g_assert_cmphex(inb(f, RBR), ==, 0);
}

static void test_state_roundtrip(Fixture *f, gconstpointer data)
{
    VMStateHandler *h = &g_array_index(f->m->vmstate_handlers, VMStateHandler, 0);
    g_autoptr(GByteArray) buf = g_byte_array_new();
    g_autoptr(GError) err = NULL;

    g_assert_cmpstr(h->name, ==, "serial");
    outb(f, FCR, 0x07);
    outb(f, LCR, 0x80);
    outb(f, DLL, 0x02);
    outb(f, LCR, 0x03);
    outb(f, IER, 0x01);
    outb(f, SCR, 0x77);
    feed(f, "st", 2);
    pump(f);
    g_assert_true(h->save(h->opaque, buf, &err));
    g_assert_no_error(err);

    /* Scramble, then load the record back. */
    inb(f, RBR);
    outb(f, SCR, 0);
    outb(f, IER, 0);
    g_assert_true(h->load(h->opaque, buf->data, buf->len, h->version, &err));
    g_assert_no_error(err);
    g_assert_cmphex(inb(f, SCR), ==, 0x77);
    g_assert_cmphex(inb(f, IER), ==, 0x01);
    g_assert_cmphex(inb(f, IIR), ==, 0xc4);   /* data at the trigger level (1) */
    g_assert_cmphex(inb(f, RBR), ==, 's');
    g_assert_cmphex(inb(f, RBR), ==, 't');
    outb(f, LCR, 0x80);
    g_assert_cmphex(inb(f, DLL), ==, 0x02);

    /* A truncated record is refused with a reason. */
    g_assert_false(h->load(h->opaque, buf->data, 5, h->version, &err));
    g_assert_nonnull(err);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
#define ADD(path, fn) \
    g_test_add(path, Fixture, NULL, fixture_setup, fn, fixture_teardown)
    ADD("/serial/registers/scratch", test_scratch);
    ADD("/serial/registers/divisor-latch", test_divisor_latch);
    ADD("/serial/registers/lsr-idle", test_lsr_idle);
    ADD("/serial/registers/interrupt-identification", test_interrupt_identification);
    ADD("/serial/registers/loopback", test_loopback);
    ADD("/serial/output/bytes", test_output_bytes);
    ADD("/serial/input/fifo", test_fifo_input);
    ADD("/serial/input/fifo-disabled", test_fifo_disabled_holds_one);
    ADD("/serial/input/throttle", test_input_throttle);
    ADD("/serial/input/overrun", test_overrun);
    ADD("/serial/state/roundtrip", test_state_roundtrip);
#undef ADD
    return g_test_run();
}
