/*
 * The ovs-agent workload guest: first fills the touched region (touch=,
 * the pages right after the hot set) once, then writes hot-set pages at a
 * configured rate, keeps the generation it wrote to every page in a table
 * in its own memory, re-verifies every written page (in full) each verify
 * interval, prints a heartbeat line about once a second, "TOUCH progress"
 * and "TOUCH done" lines about the fill, and "CORRUPT page=N ..." when
 * memory differs from what it wrote.
 *
 * Freestanding, single vCPU, ring 3 (IOPL 3), no interrupts. All state lives in registers,
 * on the stack and in guest memory, so a vCPU state save/restore plus a copy
 * of RAM moves it completely. Time comes from rdtsc. The guest exits to the
 * host at least every yield_us (an out to port_yield) and asks to sleep
 * (out to port_sleep, value in microseconds) when it has nothing to do, so
 * the host can pause, throttle or stop it at a consistent point without
 * signals. The page format and the loop are the same as the sim engine's
 * (vmm/workload/page.go, sim.go).
 */
#include "abi.h"

#define LINE_MAX 160

static inline u64 rdtsc(void)
{
	u32 lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((u64)hi << 32) | lo;
}

/*
 * I/O. The guest runs in ring 3 with IOPL 3, so on hardware-assisted KVM
 * these are ordinary I/O exits; on KVM implementations that do not
 * virtualise I/O from ring 3 (PVM) they fault, and the host completes them
 * (vmm/kvmengine/faultio.go). Only these three encodings are used so the host
 * decoder stays tiny: out %eax,(%dx) and rep outsb.
 * The "memory" clobbers make every store before an exit visible to the host.
 */
static inline void outl(u16 port, u32 v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "d"(port) : "memory");
}

static inline void outsb(u16 port, const void *buf, u64 n)
{
	__asm__ volatile("rep outsb" : "+S"(buf), "+c"(n) : "d"(port) : "memory");
}

static inline void halt_forever(void)
{
	for (;;)
		__asm__ volatile("hlt" : : : "memory");
}

/* gcc may emit calls to these even when freestanding. */
void *memset(void *d, int c, unsigned long n)
{
	u8 *p = d;
	while (n--)
		*p++ = (u8)c;
	return d;
}

void *memcpy(void *d, const void *s, unsigned long n)
{
	u8 *p = d;
	const u8 *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}

static inline u64 mix64(u64 z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static inline u64 page_key(u64 seed, u64 page, u64 gen)
{
	return mix64(mix64(page ^ (gen * GOLDEN)) ^ seed);
}

struct ctx {
	volatile u64 *st;    /* status page */
	volatile u64 *table; /* expected generation per hot page */
	u64 seed;
	u64 hot_first;
	u64 hot_pages;
	u64 low_pages;
	u64 high_delta; /* gpa - ram offset for pages above the hole */
	u64 pattern;
	u64 rng;
	u64 cursor;
	u16 serial;
	int n;               /* bytes in line */
	char line[LINE_MAX]; /* console line, sent with one rep outsb */
};

static void flush(struct ctx *c)
{
	if (c->n)
		outsb(c->serial, c->line, (u64)c->n);
	c->n = 0;
}

static void putch(struct ctx *c, char ch)
{
	if (c->n == LINE_MAX)
		flush(c);
	c->line[c->n++] = ch;
	if (ch == '\n')
		flush(c);
}

static void puts_(struct ctx *c, const char *s)
{
	while (*s)
		putch(c, *s++);
}

static void putu(struct ctx *c, u64 v)
{
	char buf[24];
	int n = 0;
	do {
		buf[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		putch(c, buf[--n]);
}

static void puthex(struct ctx *c, u64 v)
{
	char buf[20];
	int n = 0;
	do {
		buf[n++] = "0123456789abcdef"[v & 15];
		v >>= 4;
	} while (v);
	puts_(c, "0x");
	while (n)
		putch(c, buf[--n]);
}

static inline u64 *page_ptr(struct ctx *c, u64 page)
{
	u64 gpa = page * PAGE_SIZE;
	if (page >= c->low_pages)
		gpa += c->high_delta;
	return (u64 *)gpa;
}

static void write_page(struct ctx *c, u64 idx)
{
	u64 page = c->hot_first + idx;
	u64 *w = page_ptr(c, page);
	u64 gen = c->table[idx] + 1;
	u64 key = page_key(c->seed, page, gen);

	c->st[ST_INFLIGHT] = page + 1;
	for (int i = 2; i < PAGE_WORDS; i++)
		w[i] = mix64(key + (u64)i * GOLDEN);
	w[1] = gen;
	w[0] = page;
	c->table[idx] = gen;
	c->st[ST_INFLIGHT] = 0;
	c->st[ST_WRITES] = c->st[ST_WRITES] + 1;
}

static u64 pick(struct ctx *c)
{
	if (c->pattern == PATTERN_SEQUENTIAL) {
		u64 i = c->cursor;
		if (++c->cursor >= c->hot_pages)
			c->cursor = 0;
		return i;
	}
	u64 x = c->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	c->rng = x;
	return (x * 0x2545f4914f6cdd1dULL) % c->hot_pages;
}

/* Returns 1 when the page matches; otherwise fills the first difference. */
static int check_page(struct ctx *c, u64 page, u64 gen, u64 *word, u64 *want, u64 *got)
{
	const volatile u64 *w = page_ptr(c, page);
	u64 key, diff = 0;

	if (w[0] != page) {
		*word = 0, *want = page, *got = w[0];
		return 0;
	}
	if (w[1] != gen) {
		*word = 1, *want = gen, *got = w[1];
		return 0;
	}
	key = page_key(c->seed, page, gen);
	for (int i = 2; i < PAGE_WORDS; i++)
		diff |= w[i] ^ mix64(key + (u64)i * GOLDEN);
	if (!diff)
		return 1;
	for (int i = 2; i < PAGE_WORDS; i++) {
		u64 e = mix64(key + (u64)i * GOLDEN);
		u64 g = w[i];
		if (g != e) {
			*word = (u64)i, *want = e, *got = g;
			return 0;
		}
	}
	return 1;
}

/* TOUCH progress|done pages=N total=N ms=N */
static void print_touch(struct ctx *c, const char *what, u64 pages, u64 total, u64 ms)
{
	puts_(c, "TOUCH ");
	puts_(c, what);
	puts_(c, " pages=");
	putu(c, pages);
	puts_(c, " total=");
	putu(c, total);
	puts_(c, " ms=");
	putu(c, ms);
	putch(c, '\n');
}

static void fatal(struct ctx *c, const struct params *p, const char *why)
{
	puts_(c, "WORKLOAD fatal: ");
	puts_(c, why);
	putch(c, '\n');
	if (p->port_fatal)
		outl((u16)p->port_fatal, FATAL_BAD_PARAMS);
	halt_forever();
}

void guest_main(const struct params *p)
{
	struct ctx c;

	c.n = 0;
	c.serial = 0x3f8;
	if (p->magic != PARAM_MAGIC || p->version != PARAM_VERSION)
		fatal(&c, p, "bad parameter page");
	c.serial = (u16)p->serial_port;
	if (p->tsc_khz == 0 || p->hot_pages == 0 || p->heartbeat_us == 0 || p->verify_us == 0 ||
	    p->hot_pages > p->ram_pages || p->touch_pages > p->ram_pages - p->hot_pages ||
	    p->hot_first > p->ram_pages - p->hot_pages - p->touch_pages || p->low_pages > p->ram_pages)
		fatal(&c, p, "inconsistent parameters");

	c.st = (volatile u64 *)p->status_gpa;
	c.table = (volatile u64 *)p->gen_table_gpa;
	c.seed = p->seed;
	c.hot_first = p->hot_first;
	c.hot_pages = p->hot_pages;
	c.low_pages = p->low_pages;
	c.high_delta = p->high_gpa - p->low_pages * PAGE_SIZE;
	c.pattern = p->pattern;
	c.rng = p->seed * GOLDEN | 1;
	c.cursor = 0;

	const u64 khz = p->tsc_khz;
	const u64 hz = khz * 1000;
	const u64 pps = p->pages_per_sec;
	const u64 wi = pps ? hz / pps : 0;
	const u64 wf = pps ? ((hz % pps) << 16) / pps : 0;
	const u64 verify_t = p->verify_us * khz / 1000;
	const u64 hb_t = p->heartbeat_us * khz / 1000;
	const u64 yield_t = p->yield_us * khz / 1000;
	const u64 lag_t = p->max_lag_us * khz / 1000;
	const u64 min_sleep_t = p->min_sleep_us * khz / 1000;
	const u64 max_sleep_t = MAX_SLEEP_US * khz / 1000;
	const u16 port_yield = (u16)p->port_yield;
	const u16 port_sleep = (u16)p->port_sleep;
	const u64 heartbeat_us = p->heartbeat_us;
	const u64 touch_total = p->touch_pages;
	const u64 tracked = c.hot_pages + touch_total; /* generation-table entries */

	c.st[ST_MAGIC] = STATUS_MAGIC;
	puts_(&c, "WORKLOAD start engine=kvm ram=");
	putu(&c, p->ram_pages);
	puts_(&c, " hot=");
	putu(&c, p->hot_first);
	putch(&c, '+');
	putu(&c, p->hot_pages);
	if (touch_total) {
		puts_(&c, " touch=");
		putu(&c, p->hot_first + p->hot_pages);
		putch(&c, '+');
		putu(&c, touch_total);
	}
	puts_(&c, " rate=");
	putu(&c, pps);
	puts_(&c, c.pattern == PATTERN_SEQUENTIAL ? " pattern=sequential" : " pattern=random");
	puts_(&c, " verify=");
	putu(&c, p->verify_us / 1000);
	puts_(&c, " seed=");
	putu(&c, c.seed);
	putch(&c, '\n');
	c.st[ST_STATE] = STATE_RUNNING;

	const u64 start = rdtsc();
	u64 due = start, due_frac = 0;
	u64 next_verify = start + verify_t;
	u64 next_hb = start + hb_t;
	u64 last_exit = start;
	u64 verifying = 0, vpos = 0, printed = 0;
	u64 last_hb_writes = c.st[ST_WRITES];
	u64 touched = 0;

	for (;;) {
		u64 now = rdtsc();
		const int filling = touched < touch_total;

		if (filling) {
			/* The touch fill comes first: no dirtying or verification
			 * rounds until it is done. */
			for (int n = 0; n < TOUCH_BATCH && touched < touch_total; n++) {
				write_page(&c, c.hot_pages + touched);
				touched++;
			}
			c.st[ST_TOUCHED] = touched;
			if (touched == touch_total) {
				now = rdtsc();
				print_touch(&c, "done", touched, touch_total, (now - start) / khz);
				due = now;
				due_frac = 0;
				next_verify = now + verify_t;
			}
		}

		if (!filling && pps) {
			for (int n = 0; (s64)(now - due) >= 0 && n < WRITE_BATCH; n++) {
				write_page(&c, pick(&c));
				due += wi;
				due_frac += wf;
				if (due_frac >= 1 << 16) {
					due_frac -= 1 << 16;
					due++;
				}
			}
			if ((s64)(now - due) > (s64)lag_t) {
				due = now;
				c.st[ST_LAG_RESETS] = c.st[ST_LAG_RESETS] + 1;
			}
		}

		if (!filling && !verifying && (s64)(now - next_verify) >= 0) {
			verifying = 1;
			vpos = 0;
			printed = 0;
			next_verify = now + verify_t;
		}
		if (verifying) {
			int checked = 0, scanned = 0;
			while (vpos < tracked && checked < VERIFY_CHUNK && scanned < SCAN_CHUNK) {
				u64 idx = vpos++;
				u64 gen = c.table[idx];
				u64 word, want, got;
				scanned++;
				if (!gen)
					continue;
				checked++;
				u64 page = c.hot_first + idx;
				int ok = check_page(&c, page, gen, &word, &want, &got);
				c.st[ST_VERIFIED] = c.st[ST_VERIFIED] + 1;
				if (!ok) {
					c.st[ST_CORRUPT] = c.st[ST_CORRUPT] + 1;
					c.st[ST_LAST_CORRUPT] = page + 1;
					if (printed < CORRUPT_PRINTS) {
						printed++;
						puts_(&c, "CORRUPT page=");
						putu(&c, page);
						puts_(&c, " gen=");
						putu(&c, gen);
						puts_(&c, " word=");
						putu(&c, word);
						puts_(&c, " want=");
						puthex(&c, want);
						puts_(&c, " got=");
						puthex(&c, got);
						putch(&c, '\n');
					}
					write_page(&c, idx); /* repair: report each corruption once */
				}
			}
			if (vpos >= tracked) {
				verifying = 0;
				c.st[ST_ROUNDS] = c.st[ST_ROUNDS] + 1;
			}
		}

		if ((s64)(now - next_hb) >= 0) {
			u64 w = c.st[ST_WRITES];
			c.st[ST_HEARTBEATS] = c.st[ST_HEARTBEATS] + 1;
			puts_(&c, "HB t=");
			putu(&c, (now - start) / hz);
			puts_(&c, " writes=");
			putu(&c, w);
			puts_(&c, " verified=");
			putu(&c, c.st[ST_VERIFIED]);
			puts_(&c, " rounds=");
			putu(&c, c.st[ST_ROUNDS]);
			puts_(&c, " corrupt=");
			putu(&c, c.st[ST_CORRUPT]);
			puts_(&c, " wps=");
			putu(&c, (w - last_hb_writes) * 1000000 / heartbeat_us);
			putch(&c, '\n');
			last_hb_writes = w;
			if (touched < touch_total)
				print_touch(&c, "progress", touched, touch_total, (now - start) / khz);
			next_hb += hb_t;
			if ((s64)(now - next_hb) >= 0)
				next_hb = now + hb_t;
		}

		now = rdtsc();
		if (!verifying && touched >= touch_total) {
			u64 next = next_hb;
			if ((s64)(next_verify - next) < 0)
				next = next_verify;
			if (pps && (s64)(due - next) < 0)
				next = due;
			if ((s64)(next - now) >= (s64)min_sleep_t) {
				u64 t = next - now;
				if (t > max_sleep_t)
					t = max_sleep_t;
				outl(port_sleep, (u32)(t * 1000 / khz));
				last_exit = rdtsc();
				continue;
			}
		}
		if (now - last_exit >= yield_t) {
			outl(port_yield, 0);
			last_exit = rdtsc();
		}
	}
}
