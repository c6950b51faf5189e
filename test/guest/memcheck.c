/*
 * memcheck: the test guest's memory checker.
 *
 *   memcheck [MIB]
 *
 * Fills MIB MiB (default 32) with a pattern that is a function of each
 * word's index and of its block's generation, then loops forever: rewrites
 * one eighth of the blocks with the next generation (a rotating window),
 * verifies every block and, once a second, prints on stdout
 *
 *   OK memcheck mib=32 passes=12 rewrites=48 t=3
 *
 * or, for each bad word (at most 4 a pass, the block is then rewritten),
 *
 *   CORRUPT memcheck offset=0x1234 want=0x... got=0x...
 *
 * Freestanding (raw Linux x86-64 system calls, no libc) so that gcc alone
 * links it static, without libc6-dev.
 */

typedef unsigned long u64;
typedef long i64;

#define BLOCK_WORDS 8192UL /* 64 KiB blocks */
#define MAX_MIB 4096UL
#define MAX_BLOCKS (MAX_MIB * 16)

static unsigned int gen[MAX_BLOCKS];

static i64 sys6(i64 n, i64 a, i64 b, i64 c, i64 d, i64 e, i64 f)
{
	register i64 r10 __asm__("r10") = d;
	register i64 r8 __asm__("r8") = e;
	register i64 r9 __asm__("r9") = f;
	i64 r;
	__asm__ volatile("syscall"
			 : "=a"(r)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return r;
}

#define SYS_write 1
#define SYS_mmap 9
#define SYS_nanosleep 35
#define SYS_exit 60
#define SYS_clock_gettime 228

struct ts {
	i64 sec, nsec;
};

static void out(const char *s, u64 n) { sys6(SYS_write, 1, (i64)s, (i64)n, 0, 0, 0); }

static u64 slen(const char *s)
{
	u64 n = 0;
	while (s[n])
		n++;
	return n;
}

/* A line is built in buf and written with one write(2). */
static char buf[256];
static u64 blen;

static void put(const char *s)
{
	while (*s && blen < sizeof buf - 1)
		buf[blen++] = *s++;
}

static void put_num(u64 v, unsigned base)
{
	char d[24];
	int i = 0;
	do {
		d[i++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	if (base == 16)
		put("0x");
	while (i > 0 && blen < sizeof buf - 1)
		buf[blen++] = d[--i];
}

static void flush(void)
{
	buf[blen++] = '\n';
	out(buf, blen);
	blen = 0;
}

static u64 now_ms(void)
{
	struct ts t;
	sys6(SYS_clock_gettime, 1 /* CLOCK_MONOTONIC */, (i64)&t, 0, 0, 0, 0);
	return (u64)t.sec * 1000 + (u64)t.nsec / 1000000;
}

static u64 pattern(u64 word, u64 g)
{
	u64 x = word * 0x9E3779B97F4A7C15UL ^ (g + 1) * 0xD1B54A32D192ED03UL;
	x ^= x >> 31;
	x *= 0xBF58476D1CE4E5B9UL;
	x ^= x >> 29;
	return x;
}

static void fill(u64 *mem, u64 b)
{
	u64 *p = mem + b * BLOCK_WORDS;
	for (u64 i = 0; i < BLOCK_WORDS; i++)
		p[i] = pattern(b * BLOCK_WORDS + i, gen[b]);
}

/* verify returns how many words of block b differ, reporting the first few. */
static u64 verify(u64 *mem, u64 b, u64 *reported)
{
	u64 *p = mem + b * BLOCK_WORDS, bad = 0;
	for (u64 i = 0; i < BLOCK_WORDS; i++) {
		u64 w = b * BLOCK_WORDS + i, want = pattern(w, gen[b]);
		if (p[i] == want)
			continue;
		bad++;
		if ((*reported)++ < 4) {
			put("CORRUPT memcheck offset=");
			put_num(w * 8, 16);
			put(" want=");
			put_num(want, 16);
			put(" got=");
			put_num(p[i], 16);
			flush();
		}
	}
	return bad;
}

static u64 parse(const char *s)
{
	u64 v = 0;
	while (*s >= '0' && *s <= '9')
		v = v * 10 + (u64)(*s++ - '0');
	return v;
}

static void report(u64 mib, u64 passes, u64 rewrites, u64 bad, u64 t0)
{
	put(bad ? "CORRUPT" : "OK");
	put(" memcheck mib=");
	put_num(mib, 10);
	put(" passes=");
	put_num(passes, 10);
	put(" rewrites=");
	put_num(rewrites, 10);
	if (bad) {
		put(" bad_words=");
		put_num(bad, 10);
	}
	put(" t=");
	put_num((now_ms() - t0) / 1000, 10);
	flush();
}

static void run(u64 mib)
{
	u64 nblocks = mib * 16, window = nblocks / 8 ? nblocks / 8 : 1;
	i64 m = sys6(SYS_mmap, 0, (i64)(mib << 20), 3 /* RW */, 0x22 /* PRIVATE|ANON */, -1, 0);
	if (m < 0 && m > -4096) {
		static const char e[] = "CORRUPT memcheck cannot map memory\n";
		out(e, sizeof e - 1);
		sys6(SYS_exit, 1, 0, 0, 0, 0, 0);
	}
	u64 *mem = (u64 *)m, t0 = now_ms(), last = t0;
	for (u64 b = 0; b < nblocks; b++)
		fill(mem, b);
	put("memcheck filled mib=");
	put_num(mib, 10);
	put(" ms=");
	put_num(now_ms() - t0, 10);
	flush();
	u64 cursor = 0, passes = 0, rewrites = 0, bad = 0;
	struct ts nap = {0, 5000000};
	for (;;) {
		for (u64 i = 0; i < window; i++, cursor = (cursor + 1) % nblocks) {
			gen[cursor]++;
			fill(mem, cursor);
			rewrites++;
		}
		u64 reported = 0;
		for (u64 b = 0; b < nblocks; b++) {
			u64 n = verify(mem, b, &reported);
			if (n) {
				bad += n;
				fill(mem, b);
			}
		}
		passes++;
		sys6(SYS_nanosleep, (i64)&nap, 0, 0, 0, 0, 0);
		if (now_ms() - last >= 1000) {
			report(mib, passes, rewrites, bad, t0);
			last = now_ms();
			bad = 0;
		}
	}
}

void cmain(i64 *sp)
{
	i64 argc = sp[0];
	char **argv = (char **)(sp + 1);
	u64 mib = argc > 1 ? parse(argv[1]) : 32;
	if (mib == 0 || mib > MAX_MIB) {
		static const char e[] = "memcheck: MIB must be 1..4096\n";
		out(e, slen(e));
		sys6(SYS_exit, 2, 0, 0, 0, 0, 0);
	}
	run(mib);
}

__asm__(".globl _start\n"
	"_start:\n"
	"	xor %rbp, %rbp\n"
	"	mov %rsp, %rdi\n"
	"	and $-16, %rsp\n"
	"	call cmain\n"
	"	hlt\n");
