/*
 * recorder: the test guest's writer of records on a shared disk, the
 * evidence of the HA tests that one domain never has two writers.
 *
 *   recorder DEVICE [INTERVAL_MS]
 *
 * Reads who runs it from QEMU's fw_cfg (the qemu_fw_cfg module):
 * /sys/firmware/qemu_fw_cfg/by_name/opt/org.ovs-agent/{domain,host,generation}/raw
 * (vmm/qemu's FwCfgDomain, FwCfgHost, FwCfgGeneration), then appends one
 * record every INTERVAL_MS (default 50) to DEVICE, a raw disk opened with
 * O_DIRECT|O_DSYNC: each record is one whole 512-byte sector, written once
 * and never rewritten. On start it reads the disk from sector 0 to the
 * first sector that is not a valid record and continues the log there,
 * with the sequence after the last record's: a guest restarted on another
 * host continues the same log. Before each write it reads the sector it is
 * about to write; one that another writer filled meanwhile is skipped (so
 * two writers at once interleave on the disk instead of overwriting each
 * other, which internal/testguest/records reports). A sector that is
 * neither empty (all zeros) nor a valid record is never overwritten: the
 * recorder stops there.
 *
 * The record, little-endian (internal/testguest/records reads it):
 *   0   magic "OVSHAREC"
 *   8   u32 version (1)           12  u32 zero
 *   16  i64 generation            24  u64 sequence (1 for the first record of a log)
 *   32  u64 guest CLOCK_MONOTONIC in ns
 *   40  boot id (/proc/sys/kernel/random/boot_id, 36 bytes), NUL-padded to 40
 *   80  domain, NUL-padded to 128 (at most 127 bytes)
 *   208 host, NUL-padded to 128 (at most 127 bytes)
 *   336 zeros
 *   508 u32 CRC-32C (Castagnoli) of bytes 0-507
 *
 * Console lines (stdout), each one write(2):
 *   testguest: records dev=DEVICE sector=N seq=S gen=G host=H domain=D
 *       once, where it starts (S: the sequence of its first record);
 *   RECORDS n=N seq=S gen=G host=H domain=D sector=K skipped=M
 *       after the first record written and after every 20 (N this boot;
 *       M sectors skipped because another writer filled them);
 *   RECORDS FAILED WHY   on an error (it exits, except on a failed write,
 *       which it retries at the next interval and reports once in 20);
 *   RECORDS FULL sector=K   at the end of the disk (it then only sleeps).
 *
 * Freestanding (raw Linux x86-64 system calls, no libc) like memcheck.c.
 */

typedef unsigned long u64;
typedef long i64;
typedef unsigned int u32;
typedef unsigned char u8;

#define SECTOR 512
#define SCAN_SECTORS 128
#define MAX_NAME 127

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

#define SYS_read 0
#define SYS_write 1
#define SYS_open 2
#define SYS_close 3
#define SYS_ioctl 16
#define SYS_pread64 17
#define SYS_pwrite64 18
#define SYS_nanosleep 35
#define SYS_exit 60
#define SYS_clock_gettime 228

#define O_RDONLY 0
#define O_RDWR 2
#define O_DSYNC 010000
#define O_DIRECT 040000
#define BLKGETSIZE64 0x80081272UL
#define ENOENT 2

struct ts {
	i64 sec, nsec;
};

static void out(const char *s, u64 n) { sys6(SYS_write, 1, (i64)s, (i64)n, 0, 0, 0); }

/* A line is built in line and written with one write(2). */
static char line[768];
static u64 llen;

static void put(const char *s)
{
	while (*s && llen < sizeof line - 1)
		line[llen++] = *s++;
}

static void put_num(u64 v)
{
	char d[24];
	int i = 0;
	do {
		d[i++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (i > 0 && llen < sizeof line - 1)
		line[llen++] = d[--i];
}

static void put_int(i64 v)
{
	if (v < 0) {
		put("-");
		put_num((u64)0 - (u64)v);
	} else {
		put_num((u64)v);
	}
}

static void flush(void)
{
	line[llen++] = '\n';
	out(line, llen);
	llen = 0;
}

static void die(const char *why, const char *what, i64 err)
{
	put("RECORDS FAILED ");
	put(why);
	if (what) {
		put(" ");
		put(what);
	}
	if (err) {
		put(" errno=");
		put_num((u64)-err);
	}
	flush();
	sys6(SYS_exit, 1, 0, 0, 0, 0, 0);
}

static void nap_ms(u64 ms)
{
	struct ts t = {(i64)(ms / 1000), (i64)(ms % 1000) * 1000000};
	sys6(SYS_nanosleep, (i64)&t, 0, 0, 0, 0, 0);
}

static u64 now_ns(void)
{
	struct ts t;
	sys6(SYS_clock_gettime, 1 /* CLOCK_MONOTONIC */, (i64)&t, 0, 0, 0, 0);
	return (u64)t.sec * 1000000000UL + (u64)t.nsec;
}

static u32 crc32c(const u8 *p, u64 n)
{
	u32 c = 0xffffffffU;
	for (u64 i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0x82f63b78U & (0U - (c & 1)));
	}
	return ~c;
}

static u64 get64(const u8 *p)
{
	u64 v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static void set64(u8 *p, u64 v)
{
	for (int i = 0; i < 8; i++, v >>= 8)
		p[i] = (u8)v;
}

static const char magic[8] = {'O', 'V', 'S', 'H', 'A', 'R', 'E', 'C'};

/* valid: the sector holds a record (magic, version, checksum). */
static int valid(const u8 *s)
{
	for (int i = 0; i < 8; i++)
		if (s[i] != (u8)magic[i])
			return 0;
	if (s[8] != 1 || s[9] || s[10] || s[11])
		return 0;
	u32 c = crc32c(s, 508);
	return s[508] == (u8)c && s[509] == (u8)(c >> 8) && s[510] == (u8)(c >> 16) && s[511] == (u8)(c >> 24);
}

static int zero(const u8 *s)
{
	for (int i = 0; i < SECTOR; i++)
		if (s[i])
			return 0;
	return 1;
}

/* readfile reads at most max bytes of path into dst, NUL-terminated; a
 * missing file is waited for (bounded: 5 s). It returns the length. */
static u64 readfile(const char *path, char *dst, u64 max)
{
	i64 fd = -ENOENT;
	for (int i = 0; i < 50 && fd == -ENOENT; i++) {
		fd = sys6(SYS_open, (i64)path, O_RDONLY, 0, 0, 0, 0);
		if (fd == -ENOENT)
			nap_ms(100);
	}
	if (fd < 0)
		die("cannot open", path, fd);
	u64 n = 0;
	for (;;) {
		i64 r = sys6(SYS_read, fd, (i64)(dst + n), (i64)(max + 1 - n), 0, 0, 0);
		if (r < 0)
			die("cannot read", path, r);
		if (r == 0)
			break;
		n += (u64)r;
		if (n > max)
			die("too long:", path, 0);
	}
	sys6(SYS_close, fd, 0, 0, 0, 0, 0);
	while (n > 0 && (dst[n - 1] == '\n' || dst[n - 1] == 0))
		n--;
	dst[n] = 0;
	return n;
}

static u64 parse(const char *s)
{
	u64 v = 0;
	while (*s >= '0' && *s <= '9')
		v = v * 10 + (u64)(*s++ - '0');
	return v;
}

/* parse_int parses a decimal int64 (optional '-'); 0 on success. */
static int parse_int(const char *s, i64 *v)
{
	int neg = *s == '-';
	u64 x = 0;
	if (neg)
		s++;
	if (!*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || x > 922337203685477580UL)
			return -1;
		x = x * 10 + (u64)(*s - '0');
	}
	if (x > (neg ? 9223372036854775808UL : 9223372036854775807UL))
		return -1;
	*v = neg ? (i64)((u64)0 - x) : (i64)x;
	return 0;
}

static u8 scan[SCAN_SECTORS * SECTOR] __attribute__((aligned(4096)));
static u8 sec[SECTOR] __attribute__((aligned(4096)));
static u8 rec[SECTOR] __attribute__((aligned(4096)));

#define FWCFG "/sys/firmware/qemu_fw_cfg/by_name/opt/org.ovs-agent/"

static void run(const char *dev, u64 interval)
{
	static char domain[MAX_NAME + 1], host[MAX_NAME + 1], gens[32], boot[40];
	i64 gen = 0;
	readfile(FWCFG "domain/raw", domain, MAX_NAME);
	readfile(FWCFG "host/raw", host, MAX_NAME);
	readfile(FWCFG "generation/raw", gens, sizeof gens - 1);
	if (parse_int(gens, &gen))
		die("generation is not a decimal int64:", gens, 0);
	readfile("/proc/sys/kernel/random/boot_id", boot, sizeof boot - 1);

	i64 fd = -ENOENT;
	for (int i = 0; i < 50 && fd == -ENOENT; i++) {
		fd = sys6(SYS_open, (i64)dev, O_RDWR | O_DIRECT | O_DSYNC, 0, 0, 0, 0);
		if (fd == -ENOENT)
			nap_ms(100);
	}
	if (fd < 0)
		die("cannot open", dev, fd);
	u64 size = 0;
	i64 r = sys6(SYS_ioctl, fd, (i64)BLKGETSIZE64, (i64)&size, 0, 0, 0);
	if (r < 0)
		die("BLKGETSIZE64", dev, r);
	u64 nsect = size / SECTOR, next = 0, seq = 1;

	/* The end of the log: the first sector that is not a record. */
	for (int end = 0; !end && next < nsect;) {
		u64 n = nsect - next < SCAN_SECTORS ? nsect - next : SCAN_SECTORS;
		r = sys6(SYS_pread64, fd, (i64)scan, (i64)(n * SECTOR), (i64)(next * SECTOR), 0, 0);
		if (r < (i64)(n * SECTOR))
			die("cannot read", dev, r < 0 ? r : 0);
		for (u64 i = 0; i < n; i++, next++) {
			if (!valid(scan + i * SECTOR)) {
				end = 1;
				break;
			}
			seq = get64(scan + i * SECTOR + 24) + 1;
		}
	}

	put("testguest: records dev=");
	put(dev);
	put(" sector=");
	put_num(next);
	put(" seq=");
	put_num(seq);
	put(" gen=");
	put_int(gen);
	put(" host=");
	put(host);
	put(" domain=");
	put(domain);
	flush();

	u64 written = 0, skipped = 0, failed = 0;
	for (;;) {
		nap_ms(interval);
		for (;;) {
			if (next >= nsect) {
				put("RECORDS FULL sector=");
				put_num(next);
				flush();
				for (;;)
					nap_ms(1000);
			}
			r = sys6(SYS_pread64, fd, (i64)sec, SECTOR, (i64)(next * SECTOR), 0, 0);
			if (r != SECTOR)
				die("cannot read", dev, r < 0 ? r : 0);
			if (zero(sec))
				break;
			if (!valid(sec)) {
				put("RECORDS FAILED sector=");
				put_num(next);
				put(" is neither empty nor a record: stopping");
				flush();
				sys6(SYS_exit, 1, 0, 0, 0, 0, 0);
			}
			next++;
			skipped++;
		}
		for (int i = 0; i < SECTOR; i++)
			rec[i] = 0;
		for (int i = 0; i < 8; i++)
			rec[i] = (u8)magic[i];
		rec[8] = 1;
		set64(rec + 16, (u64)gen);
		set64(rec + 24, seq);
		set64(rec + 32, now_ns());
		for (int i = 0; boot[i] && i < 40; i++)
			rec[40 + i] = (u8)boot[i];
		for (int i = 0; domain[i]; i++)
			rec[80 + i] = (u8)domain[i];
		for (int i = 0; host[i]; i++)
			rec[208 + i] = (u8)host[i];
		u32 c = crc32c(rec, 508);
		rec[508] = (u8)c;
		rec[509] = (u8)(c >> 8);
		rec[510] = (u8)(c >> 16);
		rec[511] = (u8)(c >> 24);
		r = sys6(SYS_pwrite64, fd, (i64)rec, SECTOR, (i64)(next * SECTOR), 0, 0);
		if (r != SECTOR) {
			if (failed++ % 20 == 0) {
				put("RECORDS FAILED write sector=");
				put_num(next);
				put(" errno=");
				put_num(r < 0 ? (u64)-r : 0);
				put(" failures=");
				put_num(failed);
				flush();
			}
			continue;
		}
		written++;
		if (written == 1 || written % 20 == 0) {
			put("RECORDS n=");
			put_num(written);
			put(" seq=");
			put_num(seq);
			put(" gen=");
			put_int(gen);
			put(" host=");
			put(host);
			put(" domain=");
			put(domain);
			put(" sector=");
			put_num(next);
			put(" skipped=");
			put_num(skipped);
			flush();
		}
		seq++;
		next++;
	}
}

void cmain(i64 *sp)
{
	i64 argc = sp[0];
	char **argv = (char **)(sp + 1);
	if (argc < 2 || argv[1][0] != '/') {
		static const char e[] = "RECORDS FAILED usage: recorder DEVICE [INTERVAL_MS]\n";
		out(e, sizeof e - 1);
		sys6(SYS_exit, 2, 0, 0, 0, 0, 0);
	}
	u64 interval = argc > 2 ? parse(argv[2]) : 50;
	if (interval == 0 || interval > 60000)
		die("INTERVAL_MS must be 1 to 60000, not", argv[2], 0);
	run(argv[1], interval);
}

__asm__(".globl _start\n"
	"_start:\n"
	"	xor %rbp, %rbp\n"
	"	mov %rsp, %rdi\n"
	"	and $-16, %rsp\n"
	"	call cmain\n"
	"	hlt\n");
