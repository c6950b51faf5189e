/*
 * Host/guest ABI of the ovs-agent workload guest.
 *
 * The host (vmm/kvmengine, Go) builds identity-mapped long-mode page tables,
 * writes struct params at the parameter page, loads this program at
 * CODE_ADDR and starts the vCPU at _start in 64-bit ring 3 with IOPL 3,
 * RDI = parameter page and RSP = top of the stack. The layout of struct params and of the status
 * page must match vmm/workload/layout.go (ParamPage, Status* constants);
 * the page format must match vmm/workload/page.go.
 */
#ifndef OVS_WORKLOAD_ABI_H
#define OVS_WORKLOAD_ABI_H

typedef unsigned long long u64;
typedef long long s64;
typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned char u8;

#define PAGE_SIZE 4096ULL
#define PAGE_WORDS 512
#define GOLDEN 0x9e3779b97f4a7c15ULL

#define PARAM_MAGIC 0x4d5250574c53564fULL
#define PARAM_VERSION 2
#define STATUS_MAGIC 0x5453574c4f53564fULL

struct params {
	u64 magic;
	u64 version;
	u64 ram_pages;
	u64 low_pages;
	u64 high_gpa;
	u64 hot_first;
	u64 hot_pages;
	u64 gen_table_gpa;
	u64 status_gpa;
	u64 seed;
	u64 pattern;
	u64 pages_per_sec;
	u64 verify_us;
	u64 heartbeat_us;
	u64 yield_us;
	u64 max_lag_us;
	u64 min_sleep_us;
	u64 tsc_khz;
	u64 serial_port;
	u64 port_yield;
	u64 port_sleep;
	u64 port_fatal;
	u64 touch_pages; /* pages filled once at start, from hot_first + hot_pages */
};

/* Status page: u64 words at status_gpa. */
enum {
	ST_MAGIC = 0,
	ST_STATE,
	ST_WRITES,
	ST_VERIFIED,
	ST_ROUNDS,
	ST_CORRUPT,
	ST_HEARTBEATS,
	ST_LAG_RESETS,
	ST_INFLIGHT,
	ST_LAST_CORRUPT,
	ST_TOUCHED,
};

enum { STATE_BOOTING = 0, STATE_RUNNING = 1, STATE_FATAL = 2 };
enum { PATTERN_RANDOM = 0, PATTERN_SEQUENTIAL = 1 };
enum { FATAL_BAD_PARAMS = 1 };

/* Loop tuning, the same as the sim engine's (vmm/workload/sim.go). */
#define WRITE_BATCH 64
#define TOUCH_BATCH 64
#define VERIFY_CHUNK 32
#define SCAN_CHUNK 4096
#define CORRUPT_PRINTS 8
#define MAX_SLEEP_US 100000

#endif
