/* stdin -> UART: raw terminal, escape keys, and back-pressure when the
 * guest does not read (the pending bytes are offered again on a timer). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <termios.h>
#include <unistd.h>

#include "ferry/console.h"
#include "ferry/devices.h"
#include "ferry/log.h"

#define ESCAPE_KEY 0x01  /* Ctrl-A */
#define RETRY_NS   (10 * 1000 * 1000)

struct console {
	struct loop *loop;
	struct vm *vm;
	bool tty;
	bool escape;            /* last key was the escape key */
	bool reading;           /* stdin registered with the loop */
	struct termios saved;
	int timer_fd;
	uint8_t pending[256];   /* bytes the UART has not taken yet */
	size_t pending_len, pending_off;
};

static void console_on_stdin(struct loop *l, int fd, uint32_t events, void *opaque);

static void console_arm_retry(struct console *c, bool on)
{
	struct itimerspec its = { 0 };

	if (on)
		its.it_value.tv_nsec = RETRY_NS;
	timerfd_settime(c->timer_fd, 0, &its, NULL);
}

/* Offer pending bytes to the UART; stop reading stdin while some remain. */
static void console_flush(struct console *c)
{
	size_t n = uart_input(c->vm->uart, c->pending + c->pending_off,
			      c->pending_len - c->pending_off);

	c->pending_off += n;
	if (c->pending_off < c->pending_len) {
		if (c->reading) {
			loop_del(c->loop, STDIN_FILENO);
			c->reading = false;
		}
		console_arm_retry(c, true);
		return;
	}
	c->pending_off = c->pending_len = 0;
	if (!c->reading &&
	    loop_add(c->loop, STDIN_FILENO, EPOLLIN, console_on_stdin, c) == 0)
		c->reading = true;
}

static void console_on_timer(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct console *c = opaque;
	uint64_t ticks;

	(void)l; (void)events;
	if (read(fd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
		return;
	if (c->pending_len)
		console_flush(c);
}

/* Turn raw keys into guest input, acting on escape sequences. */
static void console_keys(struct console *c, const uint8_t *buf, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t ch = buf[i];

		if (c->tty && c->escape) {
			c->escape = false;
			if (ch == 'x' || ch == 'X') {
				log_info("Ctrl-A x: stopping the VM");
				vm_request_stop(c->vm, VM_STOP_HOST);
				return;
			}
			if (ch == 'h' || ch == 'H' || ch == '?') {
				static const char help[] =
					"\r\nferry: Ctrl-A x quit, Ctrl-A Ctrl-A send Ctrl-A\r\n";
				if (write(STDERR_FILENO, help, sizeof(help) - 1) < 0)
					return;
				continue;
			}
			if (ch != ESCAPE_KEY)
				continue;
		} else if (c->tty && ch == ESCAPE_KEY) {
			c->escape = true;
			continue;
		}
		c->pending[c->pending_len++] = ch;
	}
}

static void console_on_stdin(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct console *c = opaque;
	uint8_t buf[sizeof(c->pending)];
	ssize_t n;

	(void)events;
	n = read(fd, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* End of input (or an error): the guest keeps running. */
		loop_del(l, fd);
		c->reading = false;
		return;
	}
	console_keys(c, buf, n);
	if (c->pending_len)
		console_flush(c);
}

struct console *console_create(struct loop *loop, struct vm *vm)
{
	struct console *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->loop = loop;
	c->vm = vm;
	c->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (c->timer_fd < 0 || loop_add(loop, c->timer_fd, EPOLLIN, console_on_timer, c) < 0)
		goto fail;
	c->tty = isatty(STDIN_FILENO);
	if (c->tty && tcgetattr(STDIN_FILENO, &c->saved) == 0) {
		struct termios raw = c->saved;

		cfmakeraw(&raw);
		/* Keep output post-processing: ferry's own log lines need \r\n. */
		raw.c_oflag |= OPOST;
		tcsetattr(STDIN_FILENO, TCSANOW, &raw);
	} else {
		c->tty = false;
	}
	/* stdin may be a file or /dev/null, which epoll refuses: then there is
	 * simply no input. */
	if (loop_add(loop, STDIN_FILENO, EPOLLIN, console_on_stdin, c) == 0)
		c->reading = true;
	return c;
fail:
	if (c->timer_fd >= 0)
		close(c->timer_fd);
	free(c);
	return NULL;
}

void console_destroy(struct console *c)
{
	if (!c)
		return;
	if (c->tty)
		tcsetattr(STDIN_FILENO, TCSANOW, &c->saved);
	if (c->reading)
		loop_del(c->loop, STDIN_FILENO);
	loop_del(c->loop, c->timer_fd);
	close(c->timer_fd);
	free(c);
}
