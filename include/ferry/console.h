/* The host side of the serial console: stdin (raw when a terminal) into the
 * guest's UART, with QEMU's escape keys (Ctrl-A x quits, Ctrl-A Ctrl-A sends
 * Ctrl-A). */
#ifndef FERRY_CONSOLE_H
#define FERRY_CONSOLE_H

#include "ferry/loop.h"
#include "ferry/vm.h"

struct console;

/* Reads stdin on @loop and feeds @vm's UART.  Puts a terminal in raw mode
 * until console_destroy(). */
struct console *console_create(struct loop *loop, struct vm *vm);
void console_destroy(struct console *c);

#endif
