/* Interrupt lines as devices see them: a GSI and a way to drive it.  The VM
 * fills in set() with KVM_IRQ_LINE; unit tests fill in a recorder. */
#ifndef FERRY_IRQ_H
#define FERRY_IRQ_H

struct irq_line {
	void (*set)(void *ctx, unsigned int gsi, int level);
	void *ctx;
	unsigned int gsi;
};

static inline void irq_line_set(const struct irq_line *l, int level)
{
	if (l && l->set)
		l->set(l->ctx, l->gsi, level);
}

#endif
