// SPDX-License-Identifier: GPL-2.0
/*
 * gestor_containers - publish container processes as JSON in /proc
 *
 * Reading /proc/sysinfo_202200075 (the name is the proc_name parameter)
 * returns one JSON document (schema/sysinfo.schema.json in the gestor
 * repository, version 3): system memory and CPU time, and one entry per
 * process that runs in a container, with the 64-hex container ID taken from
 * its cgroup path.  With all_processes=1 every process is listed.
 *
 * Only the procfs instances of the initial PID namespace serve the file: a
 * container's own /proc gets EPERM, a bind mount of the host's /proc reads.
 *
 * Only integers are exported (ns, KiB, bytes, hundredths of a percent); the
 * reader computes rates from two snapshots, so a read never waits.
 *
 * Locking: the task list is walked under rcu_read_lock() only to take task
 * references.  Everything else is gathered per task afterwards: one short
 * RCU section that takes spinlocks but never sleeps (cgroup path, name,
 * thread-group totals, the mm), then, with no lock held, the command line,
 * read through the mm already held with mmap_read_trylock(), taking
 * minor faults (a NUMA hinting fault) but never waiting for I/O: a busy
 * lock gives an empty command line flagged "cmdline_unavailable", never a
 * wait.  Command lines are kept from one read to the next (struct gc_cmd)
 * and read again from memory only when the kernel saw them change, or
 * every cmdline_refresh reads if the process ran meanwhile; a kept one is
 * flagged "cmdline_cached".
 *
 * Output: entries are written straight into the document buffer, which is
 * allocated at the first read of an open file (nothing at open), grown in
 * place when an entry would not fit, charged to the reader's memory cgroup,
 * and given back once the document has been read out.  Each cgroup's path
 * is resolved once per read: the processes of a container share it.
 *
 * Kernel interfaces that changed between 5.10 and 7.x are in gc_compat.h.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/cgroup.h>
#include <linux/cred.h>
#include <linux/ctype.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/hash.h>
#include <linux/highmem.h>
#include <linux/kernel_stat.h>
#include <linux/ktime.h>
#include <linux/minmax.h>
#include <linux/mm.h>
#include <linux/mmap_lock.h>
#include <linux/module.h>
#include <linux/mount.h>
#include <linux/namei.h>
#include <linux/pid_namespace.h>
#include <linux/proc_fs.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/swap.h>
#include <linux/task_io_accounting_ops.h>
#include <linux/tick.h>
#include <linux/uio.h>
#include <linux/vmstat.h>

#include "gc_compat.h"

/* rchar/wchar/syscr/syscw and read/write/cancelled_write_bytes. */
#if !IS_ENABLED(CONFIG_TASK_XACCT) || !IS_ENABLED(CONFIG_TASK_IO_ACCOUNTING)
#error "gestor_containers needs CONFIG_TASK_XACCT and CONFIG_TASK_IO_ACCOUNTING"
#endif

#define GC_VERSION		3
#define GC_ID_LEN		64
#define GC_CMDLINE_MAX		1024
/* A container process takes about 490 bytes, a kernel thread 320. */
#define GC_PROC_SIZE_GUESS	512
#define GC_BUF_MIN		(64 * 1024)
/*
 * The largest document the module produces: a read that would need more
 * fails with EFBIG (the reader can fall back to scanning /proc).  100,000
 * container processes take about 50 MB.
 */
#define GC_DOC_MAX		(256 * 1024 * 1024)
/* Cgroups one process can need: the v2 one and one per v1 hierarchy. */
#define GC_CG_PER_TASK		(CGROUP_SUBSYS_COUNT + 1)
#define GC_CG_BITS_MIN		6
/* Path storage: paths are packed into chunks of this size (or larger). */
#define GC_CHUNK_SIZE		(16 * 1024)
#define GC_MEMINFO_MAX		4096
#define GC_REFRESH_MAX		1000
/*
 * A buffer kept for the next read is given up when it is more than twice
 * what the last read needed (and more than this): kept memory shrinks
 * when the number of processes falls.
 */
#define GC_KEEP_SLACK		(64 * 1024)
#define GC_ALLOC		GFP_KERNEL_ACCOUNT

static char *proc_name = "sysinfo_202200075";
module_param(proc_name, charp, 0444);
MODULE_PARM_DESC(proc_name,
		 "Name of the file in /proc (default sysinfo_202200075)");

static bool all_processes;
module_param(all_processes, bool, 0644);
MODULE_PARM_DESC(all_processes,
		 "List every process, not only those in containers (default 0)");

static ushort proc_mode = 0400;
module_param(proc_mode, ushort, 0444);
MODULE_PARM_DESC(proc_mode,
		 "Permissions of the /proc file, 0 < mode <= 0444 (default 0400; read bits for group or others show every process's command line and I/O counters to them: a warning at load)");

/* Between 1 (every read) and GC_REFRESH_MAX. */
static unsigned int cmdline_refresh = 8;
static int gc_set_refresh(const char *val, const struct kernel_param *kp)
{
	unsigned int n;
	int ret;

	ret = kstrtouint(val, 0, &n);
	if (ret)
		return ret;
	if (n < 1 || n > GC_REFRESH_MAX)
		return -EINVAL;
	*(unsigned int *)kp->arg = n;
	return 0;
}

static const struct kernel_param_ops gc_refresh_ops = {
	.set = gc_set_refresh,
	.get = param_get_uint,
};
module_param_cb(cmdline_refresh, &gc_refresh_ops, &cmdline_refresh, 0644);
MODULE_PARM_DESC(cmdline_refresh,
		 "a command line unchanged in every way the kernel can see is read again from the process's memory every this many reads if the process ran meanwhile (1-1000, default 8; 1: every read)");

/*
 * For the test suite: writing N moves the kept command lines' generation
 * counter (a u32 counting reads) to N reads before it wraps, at the next
 * read, so that the wrap can be seen to neither hang nor serve stale text.
 */
static unsigned int test_wrap_in;
module_param(test_wrap_in, uint, 0600);
MODULE_PARM_DESC(test_wrap_in,
		 "testing only: the kept command lines' read counter wraps this many reads after the next one (0: leave it)");

static struct proc_dir_entry *gc_entry;

/* Size of the last complete document, to pre-size the next read's buffer. */
static size_t gc_last_size;
/* Its bytes per process collected, to grow the buffer once these are known. */
static size_t gc_last_per_task;
/* Processes the last read collected: the size of the next one's array. */
static unsigned int gc_last_nr;

/*
 * The buffer of the last document, kept for the next read: with 2,000
 * processes a document takes a megabyte, and allocating (vmalloc) and
 * freeing it at every read cost about a sixth of the read.  One is kept,
 * and given up when it is much larger than the last document.
 */
static DEFINE_SPINLOCK(gc_spare_lock);
static char *gc_spare;
static size_t gc_spare_size;

/*
 * The swap total is not exported to modules (si_swapinfo() and
 * total_swap_pages are not), nor, before 5.14, the swap cache's size
 * (total_swapcache_pages()), so they are read from meminfo of a private procfs
 * mount, opened with kernel credentials, before each document is produced
 * (not in show(): that runs under the seq_file lock, and meminfo's read
 * takes another lock of the same class).
 */
static struct vfsmount *gc_procfs;
static struct path gc_meminfo;
static const struct cred *gc_kcred;
static DEFINE_SPINLOCK(gc_swap_lock);
static u64 gc_swap_total_kib, gc_swap_free_kib, gc_swap_cached_kib;

/*
 * One cgroup seen during a read: its path, and where the container ID is
 * in it.  Keyed by hierarchy and cgroup ID (kernfs node IDs are never
 * reused within a hierarchy), so nothing here needs a reference.
 */
struct gc_cg {
	const struct cgroup_root *root;
	u64 id;
	const char *path;	/* NUL-terminated, in a chunk */
	const char *cid;	/* the container ID inside path, or NULL */
	size_t path_len;
	bool cut;		/* longer than PATH_MAX - 1: cut there */
	/*
	 * Where its ,"container_id":...,"cgroup":"..." was first written in
	 * the seq_file buffer of this show() call; frag_len 0: not yet.
	 */
	size_t frag_off;
	size_t frag_len;
};

/* Path storage: chunks freed together at the end of the read. */
struct gc_chunk {
	struct gc_chunk *next;
	size_t size;
	char data[];
};

/* What is printed for one process (the thread group of a leader). */
struct gc_proc {
	pid_t pid;
	pid_t ppid;
	char state;
	bool cmdline_unavailable;
	bool cmdline_cached;	/* the text an earlier read kept */
	bool cmdline_truncated;	/* cut at GC_CMDLINE_MAX bytes */
	char comm[TASK_COMM_LEN];
	u64 cpu_ns;
	u64 children_cpu_ns;
	u64 start_ns;
	struct task_io_accounting io;
	/* Whether it ran since a kept command line was read: gc_idle(). */
	u64 activity;		/* CPU time (ns) plus context switches */
	unsigned int nr_threads;
	unsigned int mm_threads;	/* of them, with an mm */
	bool on_cpu;		/* a thread of it runs now */
	unsigned long rss;	/* pages */
	unsigned long vsz;	/* pages */
	bool has_mm;		/* not a kernel thread or a zombie */
	const char *cmdline;	/* c->cmdline or kept text */
	size_t cmdline_len;
};

/*
 * Command lines kept between reads.  Reading one means walking the
 * process's memory map and page tables to its argument page, about half of
 * what a read costs per process (the same walk /proc/<pid>/cmdline does).
 * The text changes only when the process exec's, moves its arguments
 * (PR_SET_MM) or rewrites them in place (setproctitle(3)); the kernel sees
 * the first two, not the last.  So each read keeps what it read for the
 * next one: a kept text is used again while the process (pid and start
 * time), its program image (mm and the exec count of the thread that uses
 * it) and its argument range are the same, and is read again from memory
 * every cmdline_refresh reads, or every read for a process seen to have
 * rewritten its arguments in place, but only if the process ran since it
 * was read (gc_idle()): a process that did not run cannot have rewritten
 * them.
 */
struct gc_cmd {
	u64 start_ns;
	u64 exec_id;
	unsigned long mm;	/* identity only: never dereferenced */
	unsigned long arg_start;
	unsigned long arg_end;
	pid_t pid;
	u32 off;		/* of the text in its gc_cmds' text */
	u32 len;
	u32 due;		/* the reads at which to read it again */
	bool rewrites;		/* rewrote its arguments in place */
	bool truncated;		/* cut at GC_CMDLINE_MAX bytes */
	/* The process's, measured just before the text was read. */
	unsigned int nr_threads;
	u64 activity;
};

/* A slot of the index by pid: used if gen is the reads of its gc_cmds. */
struct gc_slot {
	u32 gen;
	u32 idx;		/* in ents */
};

struct gc_cmds {
	struct gc_cmd *ents;
	unsigned int nr;
	unsigned int cap;
	struct gc_slot *slots;	/* by pid hash, linear probing */
	unsigned int slot_bits;
	char *text;
	size_t text_len;
	size_t text_cap;
	u32 reads;		/* reads that kept their command lines */
};

/*
 * What a read keeps for the next one: the command lines, and the buffers
 * a read needs, which would otherwise be allocated, and zeroed
 * (INIT_ON_ALLOC_DEFAULT_ON), on every read.  Held by one read at a time,
 * taken with mutex_trylock(): a read that finds it taken neither waits nor
 * uses it (it reads every command line).
 */
struct gc_keep {
	struct gc_cmds cmds;		/* the last read's command lines */
	struct gc_cmd *spare_ents;	/* arrays of the read before, reused */
	unsigned int spare_cap;
	char *spare_text;
	size_t spare_text_cap;
	struct task_struct **tasks;	/* gc_collect()'s array */
	unsigned int tasks_cap;
	struct gc_chunk *chunk;		/* a chunk of cgroup paths */
};

static DEFINE_MUTEX(gc_keep_lock);
static struct gc_keep gc_keep;	/* under gc_keep_lock */

/*
 * Scratch state of one read, allocated with no lock held.  The per-process
 * scratch lives here rather than on the stack: the kernel zeroes automatic
 * variables (INIT_STACK_ALL_ZERO), which would be a memset per process.
 */
struct gc_read {
	struct seq_file *m;
	struct task_struct **tasks;
	unsigned int nr_tasks;
	unsigned int tasks_cap;
	char *cmdline;		/* GC_CMDLINE_MAX */
	unsigned long totalram;	/* pages */
	bool all;
	/* Cgroups by (root, id): open addressing, at most half full. */
	struct gc_cg *cgs;
	unsigned int cg_bits;
	unsigned int nr_cgs;
	struct gc_chunk *chunks;
	char *chunk_free;
	size_t chunk_left;
	bool chunk_full;	/* a path did not fit in chunk_left */
	/*
	 * Command lines: kept by the last read (old, NULL if another read has
	 * them) and kept by this one (cmds, until something fails).
	 */
	struct gc_cmds *old;
	struct gc_cmds cmds;
	unsigned int refresh;	/* cmdline_refresh for this read */
	bool locked;		/* holds gc_keep_lock */
	bool keep;
	/* gc_container()'s v1 cgroups already looked at. */
	struct cgroup *seen[CGROUP_SUBSYS_COUNT];
	/* The process being printed. */
	struct gc_proc st;
	/* Its command line's key, and the kept one it matches (or NULL). */
	struct gc_cmd key;
	const struct gc_cmd *kept;
};

/* --- JSON output ------------------------------------------------------ */

/*
 * Length of the well-formed UTF-8 sequence (RFC 3629) that starts at @s, or
 * 0 if none does.  Overlong forms, surrogates and code points above
 * U+10FFFF are not well formed.
 */
static unsigned int gc_utf8_len(const u8 *s, size_t left)
{
	u8 lo = 0x80, hi = 0xbf;
	unsigned int n, i;

	if (s[0] < 0x80)
		return 1;
	if (s[0] < 0xc2)
		return 0;
	if (s[0] < 0xe0) {
		n = 2;
	} else if (s[0] < 0xf0) {
		n = 3;
		if (s[0] == 0xe0)
			lo = 0xa0;
		else if (s[0] == 0xed)
			hi = 0x9f;
	} else if (s[0] < 0xf5) {
		n = 4;
		if (s[0] == 0xf0)
			lo = 0x90;
		else if (s[0] == 0xf4)
			hi = 0x8f;
	} else {
		return 0;
	}
	if (left < n || s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

/*
 * Entries are written straight into the seq_file buffer, after one check
 * that the longest they can be fits (seq_get_buf()); if it does not, the
 * buffer is marked full and show() is redone with a larger one.  Escaping
 * turns a byte into at most 6 ("\u00XX").
 */
#define GC_ESC_MAX		6
/*
 * Keys, punctuation, 17 numbers and 3 booleans of an entry, strings aside,
 * and the end of the document ("\n]}\n").
 */
#define GC_ENTRY_FIXED		1024

/* String literal @s at @p; returns the end (inlined to plain stores). */
static __always_inline char *gc_lit(char *p, const char *s)
{
	size_t n = __builtin_strlen(s);

	memcpy(p, s, n);
	return p + n;
}

/* "00" to "99" (filled by gc_init()): a division by 100 gives two digits. */
static char gc_pairs[200] __ro_after_init;

/*
 * Decimal @num at @p; returns the end.  Digits come two at a time, in
 * 32-bit arithmetic once the number fits.  Inlined: an entry has 17
 * numbers, and a call each is a fair part of printing them.
 */
static __always_inline char *gc_u64(char *p, u64 num)
{
	unsigned int len = 1;
	char *end;
	u64 x;
	u32 lo;

	if (num < 10) {
		*p = '0' + num;
		return p + 1;
	}
	for (x = num; x >= 10000; x /= 10000)
		len += 4;
	for (; x >= 10; x /= 10)
		len++;
	end = p + len;
	p = end;
	while (num > U32_MAX) {
		lo = do_div(num, 100);
		p -= 2;
		memcpy(p, &gc_pairs[2 * lo], 2);
	}
	for (lo = num; lo >= 100; lo /= 100) {
		p -= 2;
		memcpy(p, &gc_pairs[2 * (lo % 100)], 2);
	}
	if (lo >= 10)
		memcpy(p - 2, &gc_pairs[2 * lo], 2);
	else
		p[-1] = '0' + lo;
	return end;
}

/*
 * @len bytes of @str as a JSON string at @p; returns the end.  '"', '\\',
 * '\n' and '\t' get their short escapes, other control characters and DEL
 * \u00XX, and each byte that is not part of well-formed UTF-8 becomes
 * U+FFFD, so the output is valid UTF-8 whatever a process calls itself.
 */
static char *gc_string(char *p, const char *str, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const u8 *s = (const u8 *)str;
	size_t i = 0, run = 0;

	*p++ = '"';
	while (i < len) {
		u8 ch = s[i];
		unsigned int n;

		if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\') {
			i++;
			continue;
		}
		n = ch >= 0x80 ? gc_utf8_len(s + i, len - i) : 0;
		if (n) {
			i += n;
			continue;
		}
		memcpy(p, s + run, i - run);
		p += i - run;
		switch (ch) {
		case '"':
			p = gc_lit(p, "\\\"");
			break;
		case '\\':
			p = gc_lit(p, "\\\\");
			break;
		case '\n':
			p = gc_lit(p, "\\n");
			break;
		case '\t':
			p = gc_lit(p, "\\t");
			break;
		default:
			if (ch >= 0x80) {
				p = gc_lit(p, "\xef\xbf\xbd");
				break;
			}
			p = gc_lit(p, "\\u00");
			*p++ = hex[ch >> 4];
			*p++ = hex[ch & 0xf];
			break;
		}
		run = ++i;
	}
	memcpy(p, s + run, i - run);
	p += i - run;
	*p++ = '"';
	return p;
}

/* --- container ID from the cgroup path ----------------------------------- */

/* Next component of a cgroup path ("/a/b"); false at the end. */
static bool gc_next(const char **pos, const char **comp, size_t *len)
{
	const char *s = *pos, *end;

	if (*s != '/')
		return false;
	end = strchrnul(++s, '/');
	if (end == s)
		return false;
	*comp = s;
	*len = end - s;
	*pos = end;
	return true;
}

static bool gc_is(const char *comp, size_t len, const char *lit)
{
	return len == strlen(lit) && !memcmp(comp, lit, len);
}

/* 64 lowercase hex digits, as Docker, containerd, Podman and CRI-O use. */
static bool gc_is_id(const char *s, size_t len)
{
	size_t i;

	if (len != GC_ID_LEN)
		return false;
	for (i = 0; i < len; i++)
		if (!isdigit(s[i]) && (s[i] < 'a' || s[i] > 'f'))
			return false;
	return true;
}

/* "<prefix><id>.scope" (a systemd scope): the ID, or NULL. */
static const char *gc_scope(const char *comp, size_t len, const char *prefix)
{
	static const char suffix[] = ".scope";
	const size_t plen = strlen(prefix), slen = sizeof(suffix) - 1;

	if (len != plen + GC_ID_LEN + slen || memcmp(comp, prefix, plen) ||
	    memcmp(comp + plen + GC_ID_LEN, suffix, slen) ||
	    !gc_is_id(comp + plen, GC_ID_LEN))
		return NULL;
	return comp + plen;
}

/* "<prefix><pod UID><suffix>": the UID in hex, '-' or '_' (systemd). */
static bool gc_is_pod(const char *comp, size_t len, const char *prefix,
		      const char *suffix)
{
	const size_t plen = strlen(prefix), slen = strlen(suffix);
	size_t i;

	if (len <= plen + slen || len > plen + 64 + slen ||
	    memcmp(comp, prefix, plen) || memcmp(comp + len - slen, suffix, slen))
		return false;
	for (i = plen; i < len - slen; i++)
		if (!isdigit(comp[i]) && (comp[i] < 'a' || comp[i] > 'f') &&
		    comp[i] != '-' && comp[i] != '_')
			return false;
	return true;
}

/* Kubernetes, cgroupfs driver: [besteffort|burstable/]pod<uid>/<id>. */
static const char *gc_kubepods(const char *pos)
{
	const char *c;
	size_t n;

	if (!gc_next(&pos, &c, &n))
		return NULL;
	if ((gc_is(c, n, "besteffort") || gc_is(c, n, "burstable")) &&
	    !gc_next(&pos, &c, &n))
		return NULL;
	if (!gc_is_pod(c, n, "pod", "") || !gc_next(&pos, &c, &n))
		return NULL;
	if (gc_is_id(c, n))
		return c;
	/* CRI-O */
	if (n == 5 + GC_ID_LEN && !memcmp(c, "crio-", 5) &&
	    gc_is_id(c + 5, GC_ID_LEN))
		return c + 5;
	return NULL;
}

/*
 * Kubernetes, systemd driver: [kubepods-<qos>.slice/]
 * kubepods[-<qos>]-pod<uid>.slice/<runtime>-<id>.scope.
 */
static const char *gc_kubepods_slice(const char *pos)
{
	const char *c, *id, *pod = "kubepods-pod";
	size_t n;

	if (!gc_next(&pos, &c, &n))
		return NULL;
	if (gc_is(c, n, "kubepods-besteffort.slice"))
		pod = "kubepods-besteffort-pod";
	else if (gc_is(c, n, "kubepods-burstable.slice"))
		pod = "kubepods-burstable-pod";
	if (strcmp(pod, "kubepods-pod") && !gc_next(&pos, &c, &n))
		return NULL;
	if (!gc_is_pod(c, n, pod, ".slice") || !gc_next(&pos, &c, &n))
		return NULL;
	id = gc_scope(c, n, "cri-containerd-");
	if (!id)
		id = gc_scope(c, n, "crio-");
	if (!id)
		id = gc_scope(c, n, "docker-");
	return id;
}

/*
 * Return the container ID in cgroup path @path, or NULL.  Only the parents
 * that each runtime creates, from the root of the hierarchy, are accepted,
 * so a 64-hex name in a delegated subtree (a systemd user session,
 * rootless Podman) names no container:
 *   /docker/<id>                          Docker, cgroupfs driver
 *   /system.slice/docker-<id>.scope       Docker, systemd driver
 *   /system.slice/nerdctl-<id>.scope      nerdctl, systemd driver
 *   /default/<id>, /k8s.io/<id>           containerd's namespaces (ctr,
 *                                         nerdctl), cgroupfs driver
 *   /machine.slice/libpod-<id>.scope      Podman (not libpod-conmon-)
 *   /kubepods/..., /kubepods.slice/...    Kubernetes (containerd, CRI-O,
 *                                         Docker)
 * Sub-cgroups a container makes below its own are still that container's.
 */
static const char *gc_find_id(const char *path)
{
	const char *pos = path, *c, *id;
	size_t n;

	if (!gc_next(&pos, &c, &n))
		return NULL;
	if (gc_is(c, n, "docker") || gc_is(c, n, "default") ||
	    gc_is(c, n, "k8s.io"))
		return gc_next(&pos, &c, &n) && gc_is_id(c, n) ? c : NULL;
	if (gc_is(c, n, "system.slice")) {
		if (!gc_next(&pos, &c, &n))
			return NULL;
		id = gc_scope(c, n, "docker-");
		return id ? id : gc_scope(c, n, "nerdctl-");
	}
	if (gc_is(c, n, "machine.slice"))
		return gc_next(&pos, &c, &n) ? gc_scope(c, n, "libpod-") : NULL;
	if (gc_is(c, n, "kubepods"))
		return gc_kubepods(pos);
	if (gc_is(c, n, "kubepods.slice"))
		return gc_kubepods_slice(pos);
	return NULL;
}

/* --- cgroups, each resolved once per read ------------------------------- */

static void gc_cg_free(struct gc_read *c)
{
	struct gc_chunk *chunk;

	while (c->chunks) {
		chunk = c->chunks;
		c->chunks = chunk->next;
		if (c->locked && !gc_keep.chunk && chunk->size == GC_CHUNK_SIZE)
			gc_keep.chunk = chunk;
		else
			kvfree(chunk);
	}
	kvfree(c->cgs);
}

/*
 * Before rcu_read_lock(): a slot for every cgroup one process can add (the
 * table stays at most half full) and, if the last process's paths did not
 * fit in what was left of the chunk (c->chunk_full), a new chunk with room
 * for a path of PATH_MAX bytes.
 */
static int gc_cg_reserve(struct gc_read *c)
{
	unsigned int bits = c->cg_bits, i, j;
	struct gc_chunk *chunk;
	struct gc_cg *cgs;

	while ((c->nr_cgs + GC_CG_PER_TASK) * 2 > (1U << bits))
		bits++;
	if (bits != c->cg_bits) {
		cgs = kvcalloc(1U << bits, sizeof(*cgs), GC_ALLOC);
		if (!cgs)
			return -ENOMEM;
		for (i = 0; c->cgs && i < (1U << c->cg_bits); i++) {
			if (!c->cgs[i].path)
				continue;
			j = hash_64(c->cgs[i].id ^ (uintptr_t)c->cgs[i].root,
				    bits);
			while (cgs[j].path)
				j = (j + 1) & ((1U << bits) - 1);
			cgs[j] = c->cgs[i];
		}
		kvfree(c->cgs);
		c->cgs = cgs;
		c->cg_bits = bits;
	}
	if (!c->chunk_full)
		return 0;
	if (c->locked && gc_keep.chunk) {
		chunk = gc_keep.chunk;
		gc_keep.chunk = NULL;
	} else {
		chunk = kvmalloc(GC_CHUNK_SIZE, GC_ALLOC);
		if (!chunk)
			return -ENOMEM;
		chunk->size = GC_CHUNK_SIZE;
	}
	chunk->next = c->chunks;
	c->chunks = chunk;
	c->chunk_free = chunk->data;
	c->chunk_left = GC_CHUNK_SIZE - sizeof(*chunk);
	c->chunk_full = false;
	return 0;
}

/*
 * The entry of @cgrp, its path resolved on first sight, or NULL if the path
 * did not fit in what is left of the chunk (c->chunk_full is then set: the
 * caller makes room and looks again).  Under rcu_read_lock(), which keeps
 * the cgroup alive; cgroup_path() only takes a spinlock.  gc_cg_reserve()
 * made room in the table.
 */
static __always_inline struct gc_cg *
gc_cg_get(struct gc_read *c, struct cgroup *cgrp)
{
	const unsigned int mask = (1U << c->cg_bits) - 1;
	u64 id = cgroup_id(cgrp);
	unsigned int i = hash_64(id ^ (uintptr_t)cgrp->root, c->cg_bits);
	size_t room = min_t(size_t, c->chunk_left, PATH_MAX);
	struct gc_cg *e;
	bool cut;
	int len;

	for (;; i = (i + 1) & mask) {
		e = &c->cgs[i];
		if (!e->path)
			break;
		if (e->id == id && e->root == cgrp->root)
			return e;
	}
	if (room < 2) {
		c->chunk_full = true;
		return NULL;
	}
	/*
	 * As /proc/<pid>/cgroup: a path longer than PATH_MAX - 1 is cut
	 * there.  cgroup_path() returns the length the whole path needs (up
	 * to 6.2) or -E2BIG (since) when it does not fit; either way what
	 * fits is in the buffer.
	 */
	len = cgroup_path(cgrp, c->chunk_free, room);
	cut = len == -E2BIG || len >= (int)room;
	if (cut && room < PATH_MAX) {
		c->chunk_full = true;
		return NULL;
	}
	if (cut)
		len = strnlen(c->chunk_free, room - 1);
	else if (len < 0)
		len = 0;
	c->chunk_free[len] = '\0';
	e->root = cgrp->root;
	e->id = id;
	e->path = c->chunk_free;
	e->path_len = len;
	e->cut = cut;
	e->cid = gc_find_id(e->path);
	c->chunk_free += len + 1;
	c->chunk_left -= len + 1;
	c->nr_cgs++;
	return e;
}

/*
 * The cgroup that tells which container @p runs in: its cgroup v2 one if
 * that names a container, else the first cgroup v1 one that does (in
 * controller order), else the v2 one (no container); NULL if a path did
 * not fit (gc_cg_get()).  Under rcu_read_lock(), which keeps the css_set
 * alive.
 */
static struct gc_cg *gc_container(struct gc_read *c, struct task_struct *p)
{
	struct cgroup **seen = c->seen;
	struct css_set *cset = task_css_set(p);
	struct cgroup *dfl = cset->dfl_cgrp;
	unsigned int nr_seen = 0, i, j;
	struct gc_cg *v2, *e;

	v2 = gc_cg_get(c, dfl);
	if (!v2 || v2->cid)
		return v2;
	for (i = 0; i < CGROUP_SUBSYS_COUNT; i++) {
		struct cgroup_subsys_state *css = cset->subsys[i];
		struct cgroup *cgrp;

		if (!css)
			continue;
		cgrp = css->cgroup;
		/* Skip the v2 hierarchy and the root of each v1 one. */
		if (cgrp->root == dfl->root || !cgroup_parent(cgrp))
			continue;
		for (j = 0; j < nr_seen && seen[j] != cgrp; j++)
			;
		if (j < nr_seen)
			continue;
		seen[nr_seen++] = cgrp;
		e = gc_cg_get(c, cgrp);
		if (!e || e->cid)
			return e;
	}
	return v2;
}

/* --- per-process data --------------------------------------------------- */

static void gc_mm_look(struct gc_read *c, struct gc_proc *st,
		       struct task_struct *t, struct mm_struct **mm,
		       struct task_struct **mm_task);

/* Whether @t is on a CPU now.  Without SMP only the reader runs. */
static __always_inline bool gc_on_cpu(struct task_struct *t)
{
#ifdef CONFIG_SMP
	/*
	 * Acquire: a thread seen off its CPU is seen with the context switch
	 * and the CPU time of its leaving it (finish_task() clears on_cpu
	 * with a release).
	 */
	return smp_load_acquire(&t->on_cpu);
#else
	return t == current;
#endif
}

/*
 * Name, parent, thread-group totals (CPU time, I/O counters), memory
 * figures and the kept command line (gc_mm_look()), under rcu_read_lock()
 * (spinlocks only), for @p (referenced by the caller).  Like
 * thread_group_cputime(), a lockless pass is retried under sig->stats_lock
 * if a thread exited meanwhile (__exit_signal() moves its counters into the
 * signal_struct, and wait_task_zombie() adds a reaped child's time to
 * cutime/cstime, under that seqlock).
 *
 * Returns false if @p was reaped since it was collected (state X, or its
 * pid already detached): it is not listed.  Otherwise, if the command line
 * must be read from memory, *@mm is the mm with a reference (mmput() it)
 * and *@mm_task a referenced thread that uses it; NULL if the kept one is
 * good, for kernel threads and for processes whose threads have all
 * released their mm (zombies; st->has_mm tells).  The leader may have
 * exited while other threads still run: then the mm is found through one
 * of them.
 */
static bool gc_group_stats(struct gc_read *c, struct task_struct *p,
			   struct gc_proc *st, struct mm_struct **mm,
			   struct task_struct **mm_task)
{
	struct signal_struct *sig = p->signal;
	bool kthread = p->flags & PF_KTHREAD;
	struct task_struct *t;
	unsigned int seq, nextseq;
	unsigned long flags;

	*mm = NULL;
	*mm_task = NULL;
	/*
	 * Only a task that is still hashed has a real_parent that RCU keeps
	 * valid (as in do_task_stat()); EXIT_DEAD (X) is set just before the
	 * task is unhashed.
	 */
	if (!pid_alive(p))
		return false;
	st->state = task_state_to_char(p);
	if (st->state == 'X')
		return false;
	st->pid = task_tgid_nr(p);
	st->ppid = task_tgid_nr(rcu_dereference(p->real_parent));
	st->start_ns = p->start_boottime;

	nextseq = 0;
	do {
		seq = nextseq;
		flags = read_seqbegin_or_lock_irqsave(&sig->stats_lock, &seq);
		st->cpu_ns = sig->sum_sched_runtime;
		st->children_cpu_ns = sig->cutime + sig->cstime;
		st->io = sig->ioac;
		st->activity = sig->nvcsw + sig->nivcsw;
		st->nr_threads = READ_ONCE(sig->nr_threads);
		st->mm_threads = 0;
		st->on_cpu = false;
		for_each_thread(p, t) {
			if (gc_on_cpu(t))
				st->on_cpu = true;
			if (READ_ONCE(t->mm))
				st->mm_threads++;
			st->cpu_ns += READ_ONCE(t->se.sum_exec_runtime);
			st->activity += READ_ONCE(t->nvcsw) +
					READ_ONCE(t->nivcsw);
			task_io_accounting_add(&st->io, &t->ioac);
		}
		nextseq = 1;
	} while (need_seqretry(&sig->stats_lock, seq));
	done_seqretry_irqrestore(&sig->stats_lock, seq, flags);
	st->activity += st->cpu_ns;

	/*
	 * As get_task_comm() and get_task_mm(), under task_lock(); the name
	 * is printed up to its first NUL, so a plain copy of the array does.
	 */
	st->has_mm = false;
	task_lock(p);
	memcpy(st->comm, p->comm, sizeof(st->comm));
	if (p->mm && !kthread)
		gc_mm_look(c, st, p, mm, mm_task);
	task_unlock(p);
	if (!st->has_mm && !kthread) {
		for_each_thread(p, t) {
			task_lock(t);
			if (t->mm)
				gc_mm_look(c, st, t, mm, mm_task);
			task_unlock(t);
			if (st->has_mm)
				break;
		}
	}
	/* @p's reference is held: one on another thread only. */
	if (*mm && *mm_task != p)
		get_task_struct(*mm_task);
	return true;
}

/*
 * Copy @len bytes at @addr of @mm into @buf through the page tables, with
 * mmap_lock held for reading, from anonymous memory only (FOLL_ANON: a
 * file's page could mean waiting on its filesystem).  A fault that needs
 * no waiting is taken (FOLL_NOWAIT): a NUMA hinting fault on a multi-node
 * host, a page never touched; one that would wait (a page on swap, whose
 * read it starts) is not.  Returns the bytes copied; *@absent tells that
 * it stopped at a mapped page it could not have.
 */
static size_t gc_copy_vm(struct mm_struct *mm, unsigned long addr, char *buf,
			 size_t len, bool *absent)
{
	size_t done = 0;

	while (done < len) {
		size_t off = offset_in_page(addr);
		size_t n = min(len - done, PAGE_SIZE - off);
		struct page *page;

		if (gc_get_remote_page(mm, addr, FOLL_ANON | FOLL_NOWAIT,
				       &page) != 1) {
			*absent = gc_vma_at(mm, addr);
			break;
		}
		gc_copy_from_page(buf + done, page, off, n);
		put_page(page);
		done += n;
		addr += n;
	}
	return done;
}

/*
 * Copy the command line of @t (which uses @mm, arguments from @arg_start to
 * @arg_end) into c->cmdline: arguments joined by single spaces, at most
 * GC_CMDLINE_MAX bytes (*@truncated if there was more).  As in
 * /proc/<pid>/cmdline, a process that overwrote its argv with
 * setproctitle(3) (the last argv byte is not NUL) gets the string up to the
 * first NUL.
 *
 * Never waits: through the mm already held, with mmap_read_trylock().  If
 * the lock is busy, a page is not present, or @t no longer uses @mm once
 * read (it exec'd: what was read is the old image's), the command line is
 * empty and *@unavailable is set.  Called with no lock held.
 */
static size_t gc_read_cmdline(struct gc_read *c, struct task_struct *t,
			      struct mm_struct *mm, unsigned long arg_start,
			      unsigned long arg_end, bool *unavailable,
			      bool *truncated)
{
	char *buf = c->cmdline, last = '\0';
	bool proctitle, absent = false;
	size_t len, got, i;

	if (arg_start >= arg_end)
		return 0;
	if (!mmap_read_trylock(mm)) {
		*unavailable = true;
		return 0;
	}
	len = min(arg_end - arg_start, (unsigned long)GC_CMDLINE_MAX);
	got = gc_copy_vm(mm, arg_start, buf, len, &absent);
	if (got == len && arg_end - arg_start > len &&
	    gc_copy_vm(mm, arg_end - 1, &last, 1, &absent) != 1)
		last = '\0';
	mmap_read_unlock(mm);

	task_lock(t);
	if (t->mm != mm)
		absent = true;
	task_unlock(t);
	if (absent) {
		*unavailable = true;
		return 0;
	}
	if (!got)
		return 0;

	if (arg_end - arg_start > len) {
		proctitle = got == len && last != '\0';
		/* More than the NUL that ends the last argument was left. */
		*truncated = got == len &&
			     (arg_end - arg_start > len + 1 || last != '\0');
	} else {
		proctitle = got == len && buf[got - 1] != '\0';
		if (got == len && !proctitle)
			got--;	/* the NUL that ends the last argument */
	}
	if (proctitle) {
		len = strnlen(buf, got);
		/* The title is cut only if it runs past what was read. */
		*truncated = *truncated && len == got;
		return len;
	}

	for (i = 0; i < got; i++)
		if (buf[i] == '\0')
			buf[i] = ' ';
	return got;
}

static void gc_cmds_free(struct gc_cmds *cs)
{
	kvfree(cs->ents);
	kvfree(cs->slots);
	kvfree(cs->text);
	memset(cs, 0, sizeof(*cs));
}

/*
 * The kept command line of @pid, or NULL.  At most one probe per slot,
 * whatever the slots hold (the table is at most half full).
 */
static const struct gc_cmd *gc_cmd_find(const struct gc_cmds *cs, pid_t pid)
{
	const struct gc_slot *slot;
	unsigned int mask, i, n;

	if (!cs->slots)
		return NULL;
	mask = (1U << cs->slot_bits) - 1;
	i = hash_32(pid, cs->slot_bits);
	for (n = 0; n <= mask; n++, i = (i + 1) & mask) {
		slot = &cs->slots[i];
		if (slot->gen != cs->reads || slot->idx >= cs->nr)
			return NULL;
		if (cs->ents[slot->idx].pid == pid)
			return &cs->ents[slot->idx];
	}
	return NULL;
}

/*
 * Keep @e, with its text @text (@e->len bytes), for the next read.  If
 * memory runs out, this read keeps nothing (the last read's stay).
 */
static void gc_cmd_keep(struct gc_read *c, const struct gc_cmd *e,
			const char *text)
{
	struct gc_cmds *cs = &c->cmds;
	struct gc_cmd *n;

	if (!c->keep || cs->nr == cs->cap)
		return;
	if (cs->text_len + e->len > cs->text_cap) {
		size_t cap = max(2 * cs->text_cap, cs->text_len + e->len);
		char *text_new = kvmalloc(cap, GC_ALLOC);

		if (!text_new) {
			c->keep = false;
			return;
		}
		memcpy(text_new, cs->text, cs->text_len);
		kvfree(cs->text);
		cs->text = text_new;
		cs->text_cap = cap;
	}
	n = &cs->ents[cs->nr++];
	*n = *e;
	n->off = cs->text_len;
	memcpy(cs->text + cs->text_len, text, e->len);
	cs->text_len += e->len;
}

/* Print the kept command line @e of this read's last (c->old), and keep it. */
static void gc_cmd_use(struct gc_read *c, struct gc_proc *st,
		       const struct gc_cmd *e)
{
	st->cmdline = c->old->text + e->off;
	st->cmdline_len = e->len;
	st->cmdline_cached = true;
	st->cmdline_truncated = e->truncated;
	gc_cmd_keep(c, e, st->cmdline);
}

/* Whether read @reads comes before read @due (u32 counters; they wrap). */
static bool gc_before(u32 reads, u32 due)
{
	return (s32)(reads - due) < 0;
}

/*
 * Whether the process of @st has not run since its kept command line @old
 * was read from memory, so that the text is still what is there: no thread
 * of it is on a CPU, and its CPU time, context switches (a thread that ran
 * and left its CPU counts one) and thread count are the same.  Its mm
 * (@mm, kept alive by the caller) must have no user but its threads (those
 * that still have it: an exited leader does not): a process sharing it
 * (CLONE_VM), or a kernel thread working in it, could write there.  A
 * write by another process while it does not run (a debugger's, through
 * /proc/<pid>/mem or process_vm_writev()) shows once it runs again.
 */
static bool gc_idle(const struct gc_proc *st, const struct gc_cmd *old,
		    struct mm_struct *mm)
{
	return !st->on_cpu && st->activity == old->activity &&
	       st->nr_threads == old->nr_threads &&
	       atomic_read(&mm->mm_users) <= st->mm_threads;
}

/*
 * With task_lock(@t) held and @t->mm not NULL (and @t a thread of the
 * process in @st): memory figures, and the command line's key (see struct
 * gc_cmd) looked up among the kept ones.  The lock keeps the mm alive, so
 * that a process whose kept command line is used needs no reference on it;
 * otherwise *@mm gets one, and *@mm_task is @t, for gc_mm_stats().
 */
static void gc_mm_look(struct gc_read *c, struct gc_proc *st,
		       struct task_struct *t, struct mm_struct **mm,
		       struct task_struct **mm_task)
{
	struct mm_struct *tmm = t->mm;
	const struct gc_cmd *old = NULL;
	struct gc_cmd *e = &c->key;

	st->has_mm = true;
	st->rss = gc_mm_rss(tmm);
	st->vsz = READ_ONCE(tmm->total_vm);
	e->start_ns = st->start_ns;
	e->exec_id = READ_ONCE(t->self_exec_id);
	e->mm = (unsigned long)tmm;
	e->pid = st->pid;
	/*
	 * Without mm->arg_lock: prctl(PR_SET_MM) changes the range under it,
	 * and a pair read across such a change matches no kept one (or is
	 * the range before it): a command line read from memory reads the
	 * range again under the lock.
	 */
	e->arg_start = READ_ONCE(tmm->arg_start);
	e->arg_end = READ_ONCE(tmm->arg_end);
	e->activity = st->activity;
	e->nr_threads = st->nr_threads;
	if (c->old)
		old = gc_cmd_find(c->old, st->pid);
	if (old && (old->start_ns != e->start_ns ||
		    old->exec_id != e->exec_id || old->mm != e->mm ||
		    old->arg_start != e->arg_start ||
		    old->arg_end != e->arg_end))
		old = NULL;
	c->kept = old;
	/*
	 * Good, and not due to be read again or its process did not run
	 * since it was read (c->old is NULL if refresh is 1).
	 */
	if (old && (gc_before(c->cmds.reads, old->due) ||
		    gc_idle(st, old, tmm)))
		return;
	*mm = tmm;
	mmget(tmm);
	*mm_task = t;
}

/*
 * The command line of @st from memory, its key in c->key and the kept one
 * of the same image in c->kept (if any); kept for the next read.
 */
static void gc_cmdline(struct gc_read *c, struct gc_proc *st,
		       struct mm_struct *mm, struct task_struct *mm_task)
{
	const u32 reads = c->cmds.reads, refresh = c->refresh;
	const struct gc_cmd *old = c->kept;
	struct gc_cmd *e = &c->key;
	bool same;

	spin_lock(&mm->arg_lock);
	e->arg_start = mm->arg_start;
	e->arg_end = mm->arg_end;
	spin_unlock(&mm->arg_lock);
	same = old && old->arg_start == e->arg_start &&
	       old->arg_end == e->arg_end;
	st->cmdline = c->cmdline;
	st->cmdline_len = gc_read_cmdline(c, mm_task, mm, e->arg_start,
					  e->arg_end, &st->cmdline_unavailable,
					  &st->cmdline_truncated);
	if (st->cmdline_unavailable) {
		if (!same)
			return;
		/* Not readable now: what was read of this image, again next read. */
		st->cmdline_unavailable = false;
		*e = *old;
		e->due = reads + 1;
		gc_cmd_use(c, st, e);
		return;
	}
	e->len = st->cmdline_len;
	e->truncated = st->cmdline_truncated;
	e->rewrites = same && (old->rewrites || old->len != e->len ||
			       memcmp(c->old->text + old->off, st->cmdline,
				      e->len));
	if (e->rewrites)
		e->due = reads + 1;
	else if (same)
		e->due = reads + refresh;
	else	/* first seen: spread the refreshes over the reads */
		e->due = reads + 1 + (u32)st->pid % refresh;
	gc_cmd_keep(c, e, st->cmdline);
}

/*
 * With no lock held: the command line, kept or read from memory.  Drops
 * the references gc_group_stats() took: the mm with mmput_async(), since
 * the process may have exited meanwhile and this be the last reference,
 * whose teardown (exit_aio() waiting for I/O) must not run under this
 * read's locks.
 */
static void gc_mm_stats(struct gc_read *c, struct gc_proc *st,
			struct task_struct *p, struct mm_struct *mm,
			struct task_struct *mm_task)
{
	st->cmdline = c->cmdline;
	st->cmdline_len = 0;
	st->cmdline_unavailable = false;
	st->cmdline_cached = false;
	st->cmdline_truncated = false;
	if (!st->has_mm) {
		st->rss = 0;
		st->vsz = 0;
		return;
	}
	if (!mm) {	/* the kept one is good */
		gc_cmd_use(c, st, c->kept);
		return;
	}
	gc_cmdline(c, st, mm, mm_task);
	mmput_async(mm);
	if (mm_task != p)
		put_task_struct(mm_task);
}

/* Longest ,"container_id":...,"cgroup_truncated":... of @cg can be. */
static size_t gc_cgroup_max(const struct gc_cg *cg)
{
	if (cg->frag_len)
		return cg->frag_len;
	return 64 + GC_ID_LEN + GC_ESC_MAX * cg->path_len;
}

/*
 * ,"container_id":...,"cgroup":"...","cgroup_truncated":... of @cg at @p
 * (in the document buffer of @m): written out once per read, then copied
 * from there.
 */
static char *gc_cgroup(struct seq_file *m, char *p, struct gc_cg *cg)
{
	char *start = p;

	if (cg->frag_len) {
		memcpy(p, m->buf + cg->frag_off, cg->frag_len);
		return p + cg->frag_len;
	}
	if (cg->cid) {
		p = gc_lit(p, ",\"container_id\":\"");
		memcpy(p, cg->cid, GC_ID_LEN);
		p = gc_lit(p + GC_ID_LEN, "\",\"cgroup\":");
	} else {
		p = gc_lit(p, ",\"container_id\":null,\"cgroup\":");
	}
	p = gc_string(p, cg->path, cg->path_len);
	if (cg->cut)
		p = gc_lit(p, ",\"cgroup_truncated\":true");
	else
		p = gc_lit(p, ",\"cgroup_truncated\":false");
	cg->frag_off = start - m->buf;
	cg->frag_len = p - start;
	return p;
}

/* A literal for each value of a boolean field. */
static __always_inline char *gc_bool(char *p, bool v, const char *yes,
				     const char *no)
{
	return v ? gc_lit(p, yes) : gc_lit(p, no);
}

/*
 * Replace the document buffer of @m by one of @size bytes (at least what
 * it holds), the document so far copied into it, so that nothing is
 * redone.
 */
static int gc_resize(struct seq_file *m, size_t size)
{
	char *buf;

	buf = kvmalloc(size, GC_ALLOC);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, m->buf, m->count);
	kvfree(m->buf);
	m->buf = buf;
	m->size = size;
	return 0;
}

/*
 * Make room for @need more bytes in the document buffer of @m: twice as
 * large, or what is needed.  -EFBIG past GC_DOC_MAX.
 */
static int gc_grow(struct seq_file *m, size_t need)
{
	if (m->count + need <= m->size)
		return 0;
	if (m->count + need > GC_DOC_MAX)
		return -EFBIG;
	return gc_resize(m, clamp_t(size_t, 2 * m->size, m->count + need,
				    GC_DOC_MAX));
}

/* Print one process entry, after ",\n" unless it is the first. */
static int gc_show_proc(struct gc_read *c, const struct gc_proc *st,
			struct gc_cg *cg, bool first)
{
	size_t comm_len = strnlen(st->comm, sizeof(st->comm));
	struct seq_file *m = c->m;
	char *start, *p;
	u64 pct = 0;
	int ret;

	/* The entry at its longest, and the end of the document. */
	ret = gc_grow(m, GC_ENTRY_FIXED + gc_cgroup_max(cg) +
		      GC_ESC_MAX * (comm_len + st->cmdline_len));
	if (ret)
		return ret;
	seq_get_buf(m, &start);
	if (c->totalram)
		pct = min_t(u64, div64_ul((u64)st->rss * 10000, c->totalram),
			    10000);

	p = first ? gc_lit(start, "\n{\"pid\":") : gc_lit(start, ",\n{\"pid\":");
	p = gc_u64(p, st->pid);
	p = gc_u64(gc_lit(p, ",\"ppid\":"), st->ppid);
	p = gc_string(gc_lit(p, ",\"comm\":"), st->comm, comm_len);
	p = gc_string(gc_lit(p, ",\"cmdline\":"), st->cmdline, st->cmdline_len);
	p = gc_bool(p, st->cmdline_unavailable, ",\"cmdline_unavailable\":true",
		    ",\"cmdline_unavailable\":false");
	p = gc_bool(p, st->cmdline_cached, ",\"cmdline_cached\":true",
		    ",\"cmdline_cached\":false");
	p = gc_bool(p, st->cmdline_truncated, ",\"cmdline_truncated\":true",
		    ",\"cmdline_truncated\":false");
	p = gc_cgroup(m, p, cg);
	p = gc_lit(p, ",\"state\":\"");
	*p++ = st->state;
	p = gc_u64(gc_lit(p, "\",\"rss_kib\":"),
		   (u64)st->rss << (PAGE_SHIFT - 10));
	p = gc_u64(gc_lit(p, ",\"vsz_kib\":"),
		   (u64)st->vsz << (PAGE_SHIFT - 10));
	p = gc_u64(gc_lit(p, ",\"mem_pct_x100\":"), pct);
	p = gc_u64(gc_lit(p, ",\"cpu_time_ns\":"), st->cpu_ns);
	p = gc_u64(gc_lit(p, ",\"children_cpu_time_ns\":"),
		   st->children_cpu_ns);
	p = gc_u64(gc_lit(p, ",\"start_time_ns\":"), st->start_ns);
	p = gc_u64(gc_lit(p, ",\"read_bytes\":"), st->io.read_bytes);
	p = gc_u64(gc_lit(p, ",\"write_bytes\":"), st->io.write_bytes);
	p = gc_u64(gc_lit(p, ",\"cancelled_write_bytes\":"),
		   st->io.cancelled_write_bytes);
	p = gc_u64(gc_lit(p, ",\"rchar\":"), st->io.rchar);
	p = gc_u64(gc_lit(p, ",\"wchar\":"), st->io.wchar);
	p = gc_u64(gc_lit(p, ",\"syscr\":"), st->io.syscr);
	p = gc_u64(gc_lit(p, ",\"syscw\":"), st->io.syscw);
	*p++ = '}';
	seq_commit(m, p - start);
	return 0;
}

/*
 * One task of the collected list: listed if it runs in a container (or
 * all_processes) and was not reaped meanwhile.  *@first says whether an
 * entry was printed yet.
 */
static int gc_show_task(struct gc_read *c, struct task_struct *p,
			bool *first)
{
	struct task_struct *mm_task = NULL;
	struct mm_struct *mm = NULL;
	struct gc_proc *st = &c->st;
	struct gc_cg *cg;
	bool listed = false;
	int ret;

	do {
		ret = gc_cg_reserve(c);
		if (ret)
			return ret;
		rcu_read_lock();
		cg = gc_container(c, p);
		if (cg && (cg->cid || c->all))
			listed = gc_group_stats(c, p, st, &mm, &mm_task);
		rcu_read_unlock();
	} while (!cg);	/* a path did not fit: with a new chunk */
	if (!listed)
		return 0;

	gc_mm_stats(c, st, p, mm, mm_task);
	ret = gc_show_proc(c, st, cg, *first);
	*first = false;
	return ret;
}

/* --- system-wide figures ------------------------------------------------- */

/*
 * SwapTotal, SwapFree and SwapCached (KiB) from the private procfs mount's
 * meminfo, opened with kernel credentials (so no LSM profile of the reader
 * applies).
 */
static int gc_read_swap(u64 *total, u64 *free, u64 *cached)
{
	bool got_total = false, got_free = false;
	char *buf, *line, *next;
	struct file *file;
	loff_t pos = 0;
	ssize_t n;

	buf = kmalloc(GC_MEMINFO_MAX, GC_ALLOC);
	if (!buf)
		return -ENOMEM;
	file = dentry_open(&gc_meminfo, O_RDONLY, gc_kcred);
	if (IS_ERR(file)) {
		n = PTR_ERR(file);
	} else {
		n = kernel_read(file, buf, GC_MEMINFO_MAX - 1, &pos);
		fput(file);
	}
	if (n < 0) {
		kfree(buf);
		return n;
	}
	buf[n] = '\0';
	for (line = buf; line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (!strstarts(line, "Swap"))
			continue;
		if (sscanf(line, "SwapTotal: %llu kB", total) == 1)
			got_total = true;
		else if (sscanf(line, "SwapFree: %llu kB", free) == 1)
			got_free = true;
		else if (sscanf(line, "SwapCached: %llu kB", cached) == 1)
			continue;
	}
	kfree(buf);
	return got_total && got_free ? 0 : -EINVAL;
}

/* Before each document: the swap figures it will show. */
static void gc_update_swap(void)
{
	u64 total, free, cached = 0;
	int ret;

	ret = gc_read_swap(&total, &free, &cached);
	if (ret) {
		/* Free swap is exported: a lower bound of the total. */
		pr_warn_once("cannot read SwapTotal from meminfo (%d)\n", ret);
		free = (u64)max(get_nr_swap_pages(), 0L) << (PAGE_SHIFT - 10);
		total = free;
	}
	spin_lock(&gc_swap_lock);
	gc_swap_total_kib = total;
	gc_swap_free_kib = free;
	gc_swap_cached_kib = cached;
	spin_unlock(&gc_swap_lock);
}

/* As get_idle_time() in fs/proc/stat.c: NO_HZ keeps idle time elsewhere. */
static u64 gc_idle_ns(struct kernel_cpustat *kcs, int cpu, bool iowait)
{
	u64 us = -1ULL;

	if (cpu_online(cpu))
		us = iowait ? get_cpu_iowait_time_us(cpu, NULL)
			    : get_cpu_idle_time_us(cpu, NULL);
	if (us == -1ULL)
		return kcs->cpustat[iowait ? CPUTIME_IOWAIT : CPUTIME_IDLE];
	return us * NSEC_PER_USEC;
}

static void gc_show_system(struct seq_file *m, struct gc_read *c)
{
	u64 user = 0, nice = 0, system = 0, idle = 0, iowait = 0;
	u64 irq = 0, softirq = 0, steal = 0, swap_total, swap_free, swap_cached;
	unsigned long avail;
	struct sysinfo si;
	long cached;
	int cpu;

	for_each_possible_cpu(cpu) {
		struct kernel_cpustat kcs;

		kcpustat_cpu_fetch(&kcs, cpu);
		user += kcs.cpustat[CPUTIME_USER];
		nice += kcs.cpustat[CPUTIME_NICE];
		system += kcs.cpustat[CPUTIME_SYSTEM];
		idle += gc_idle_ns(&kcs, cpu, false);
		iowait += gc_idle_ns(&kcs, cpu, true);
		irq += kcs.cpustat[CPUTIME_IRQ];
		softirq += kcs.cpustat[CPUTIME_SOFTIRQ];
		steal += kcs.cpustat[CPUTIME_STEAL];
	}

	spin_lock(&gc_swap_lock);
	swap_total = gc_swap_total_kib;
	swap_free = gc_swap_free_kib;
	swap_cached = gc_swap_cached_kib;
	spin_unlock(&gc_swap_lock);
	si_meminfo(&si);
	avail = si_mem_available();
	/* As meminfo's Cached: file pages less the swap cache and buffers. */
	cached = global_node_page_state(NR_FILE_PAGES) -
		 (long)(swap_cached >> (PAGE_SHIFT - 10)) - si.bufferram;
	c->totalram = si.totalram;

	seq_put_decimal_ull(m, ",\"system\":{\"cpu_count\":",
			    num_online_cpus());
	seq_put_decimal_ull(m, ",\"cpu_time_ns\":{\"user\":", user);
	seq_put_decimal_ull(m, ",\"nice\":", nice);
	seq_put_decimal_ull(m, ",\"system\":", system);
	seq_put_decimal_ull(m, ",\"idle\":", idle);
	seq_put_decimal_ull(m, ",\"iowait\":", iowait);
	seq_put_decimal_ull(m, ",\"irq\":", irq);
	seq_put_decimal_ull(m, ",\"softirq\":", softirq);
	seq_put_decimal_ull(m, ",\"steal\":", steal);
	seq_put_decimal_ull(m, "},\"mem_total_kib\":",
			    (u64)si.totalram << (PAGE_SHIFT - 10));
	seq_put_decimal_ull(m, ",\"mem_free_kib\":",
			    (u64)si.freeram << (PAGE_SHIFT - 10));
	seq_put_decimal_ull(m, ",\"mem_available_kib\":",
			    (u64)avail << (PAGE_SHIFT - 10));
	seq_put_decimal_ull(m, ",\"mem_used_kib\":",
			    (u64)(si.totalram - min(avail, si.totalram))
			    << (PAGE_SHIFT - 10));
	seq_put_decimal_ull(m, ",\"mem_cached_kib\":",
			    (u64)max(cached, 0L) << (PAGE_SHIFT - 10));
	seq_put_decimal_ull(m, ",\"swap_total_kib\":", swap_total);
	seq_put_decimal_ull(m, ",\"swap_free_kib\":", swap_free);
	seq_putc(m, '}');
}

/* --- one read -------------------------------------------------------------- */

static unsigned int gc_count_processes(void)
{
	struct task_struct *p;
	unsigned int nr = 0;

	rcu_read_lock();
	for_each_process(p)
		nr++;
	rcu_read_unlock();
	return nr;
}

/*
 * Whether a buffer of @cap bytes kept for reads that need @need is too
 * large to keep: kept memory follows the number of processes down.
 */
static bool gc_too_big(size_t cap, size_t need)
{
	return cap > 2 * need + GC_KEEP_SLACK;
}

/*
 * Take a reference on every thread-group leader.  The array is allocated
 * before rcu_read_lock(), sized from the last read's count; if it is too
 * small, drop the references and retry with the count just seen (plus a
 * quarter): a blocking read never fails with EAGAIN.
 */
static int gc_collect(struct gc_read *c)
{
	unsigned int cap = READ_ONCE(gc_last_nr), nr, i;
	struct gc_keep *k = &gc_keep;
	struct task_struct *p;

	if (!cap)
		cap = gc_count_processes();
	for (;;) {
		cap += cap / 4 + 64;
		if (c->locked && k->tasks &&
		    (k->tasks_cap < cap ||
		     gc_too_big(k->tasks_cap * sizeof(*k->tasks),
				cap * sizeof(*k->tasks)))) {
			kvfree(k->tasks);
			k->tasks = NULL;
			k->tasks_cap = 0;
		}
		if (c->locked && k->tasks) {
			c->tasks = k->tasks;
			cap = k->tasks_cap;
			k->tasks = NULL;
			k->tasks_cap = 0;
		} else {
			c->tasks = kvmalloc_array(cap, sizeof(*c->tasks),
						  GC_ALLOC);
		}
		if (!c->tasks)
			return -ENOMEM;
		c->tasks_cap = cap;

		nr = 0;
		rcu_read_lock();
		for_each_process(p) {
			if (nr < cap) {
				get_task_struct(p);
				c->tasks[nr] = p;
			}
			nr++;
		}
		rcu_read_unlock();

		if (nr <= cap) {
			c->nr_tasks = nr;
			WRITE_ONCE(gc_last_nr, nr);
			return 0;
		}
		for (i = 0; i < cap; i++) {
			put_task_struct(c->tasks[i]);
			if (i % 1024 == 1023)
				cond_resched();
		}
		kvfree(c->tasks);
		c->tasks = NULL;
		if (fatal_signal_pending(current))
			return -EINTR;
		cap = nr;
	}
}

/* Free the arrays of the read before the last, kept to be reused. */
static void gc_spares_free(struct gc_keep *k)
{
	kvfree(k->spare_ents);
	kvfree(k->spare_text);
	k->spare_ents = NULL;
	k->spare_cap = 0;
	k->spare_text = NULL;
	k->spare_text_cap = 0;
}

/*
 * Take what the last read kept (gc_keep), unless another read has it.
 * Before anything is allocated.
 */
static void gc_keep_take(struct gc_read *c)
{
	c->refresh = READ_ONCE(cmdline_refresh);
	c->locked = mutex_trylock(&gc_keep_lock);
}

/*
 * Move the kept command lines @cs to generation @to (test_wrap_in), as if
 * that many reads had kept them: the slots of the current generation and
 * the reads at which each is due move with it; stale slots get a
 * generation no read before the wrap has.
 */
static void gc_cmds_jump(struct gc_cmds *cs, u32 to)
{
	const u32 delta = to - cs->reads;
	unsigned int i;

	for (i = 0; cs->slots && i < (1U << cs->slot_bits); i++)
		cs->slots[i].gen = cs->slots[i].gen == cs->reads ? to : to - 1;
	for (i = 0; i < cs->nr; i++)
		cs->ents[i].due += delta;
	cs->reads = to;
}

/*
 * Use the command lines the last read kept and make room for this read's,
 * in the arrays of the read before when they are large enough (and not
 * much larger).  After gc_collect().  With cmdline_refresh=1 nothing is
 * kept.
 */
static void gc_cmds_begin(struct gc_read *c)
{
	struct gc_keep *k = &gc_keep;
	unsigned int wrap_in;
	size_t text_cap;

	if (!c->locked)
		return;
	if (c->refresh == 1) {
		gc_cmds_free(&k->cmds);
		gc_spares_free(k);
		return;
	}
	wrap_in = xchg(&test_wrap_in, 0);
	if (wrap_in)
		gc_cmds_jump(&k->cmds, U32_MAX - wrap_in);
	c->old = &k->cmds;
	c->cmds.reads = k->cmds.reads + 1;
	if (!c->cmds.reads) {
		/*
		 * The counter wrapped (2^32 reads): a zeroed slot would read
		 * as one of this read's.  Start over: this read reads every
		 * command line and indexes them in a new, zeroed table.
		 */
		gc_cmds_free(&k->cmds);
		c->old = NULL;
		c->cmds.reads = 1;
	}
	if (k->spare_cap >= c->nr_tasks &&
	    !gc_too_big(k->spare_cap * sizeof(*k->spare_ents),
			c->nr_tasks * sizeof(*k->spare_ents))) {
		c->cmds.ents = k->spare_ents;
		c->cmds.cap = k->spare_cap;
	} else {
		kvfree(k->spare_ents);
		c->cmds.ents = kvmalloc_array(c->nr_tasks, sizeof(*c->cmds.ents),
					      GC_ALLOC);
		c->cmds.cap = c->cmds.ents ? c->nr_tasks : 0;
	}
	text_cap = k->cmds.text_len + k->cmds.text_len / 4 + PAGE_SIZE;
	if (k->spare_text_cap >= text_cap &&
	    !gc_too_big(k->spare_text_cap, text_cap)) {
		c->cmds.text = k->spare_text;
		c->cmds.text_cap = k->spare_text_cap;
	} else {
		kvfree(k->spare_text);
		c->cmds.text = kvmalloc(text_cap, GC_ALLOC);
		c->cmds.text_cap = c->cmds.text ? text_cap : 0;
	}
	k->spare_ents = NULL;
	k->spare_cap = 0;
	k->spare_text = NULL;
	k->spare_text_cap = 0;
	c->keep = c->cmds.ents && c->cmds.text;
}

/*
 * Index this read's command lines by pid, in the last read's index if it
 * is large enough and not much larger (its slots are stale: they carry
 * older generations); false if memory ran out.  Once nothing more is
 * looked up in the last read's.
 */
static bool gc_cmds_index(struct gc_cmds *cs, struct gc_cmds *last)
{
	unsigned int bits = 4, mask, i, j, n;
	struct gc_slot *slots;

	while ((1U << bits) < 2 * cs->nr)
		bits++;
	if (last->slots && last->slot_bits >= bits &&
	    last->slot_bits <= bits + 1) {
		slots = last->slots;
		bits = last->slot_bits;
	} else {
		/* Zeroed: generation 0 is no read's. */
		slots = kvcalloc(1U << bits, sizeof(*slots), GC_ALLOC);
		if (!slots)
			return false;
		kvfree(last->slots);
	}
	last->slots = NULL;
	cs->slots = slots;
	cs->slot_bits = bits;
	mask = (1U << bits) - 1;
	for (i = 0; i < cs->nr; i++) {
		/* At most half full: a free slot is always found. */
		j = hash_32(cs->ents[i].pid, bits);
		for (n = 0; slots[j].gen == cs->reads; j = (j + 1) & mask)
			if (++n > mask)
				return false;
		slots[j].gen = cs->reads;
		slots[j].idx = i;
		if (i % 4096 == 4095)
			cond_resched();
	}
	return true;
}

/*
 * A read that produced its whole document (@done) keeps its command lines
 * for the next one in place of the last read's, whose arrays are kept to
 * be reused; otherwise this read's arrays are.
 */
static void gc_cmds_end(struct gc_read *c, bool done)
{
	struct gc_keep *k = &gc_keep;
	struct gc_cmds *spare = &c->cmds;

	if (!c->locked)
		return;
	if (done && c->keep && gc_cmds_index(&c->cmds, &k->cmds)) {
		swap(k->cmds, c->cmds);
		spare = &c->cmds;
	}
	if (!k->spare_ents) {
		k->spare_ents = spare->ents;
		k->spare_cap = spare->cap;
		spare->ents = NULL;
	}
	if (!k->spare_text) {
		k->spare_text = spare->text;
		k->spare_text_cap = spare->text_cap;
		spare->text = NULL;
	}
	gc_cmds_free(spare);
	c->keep = false;
	c->old = NULL;
}

/* Give back what the read took from gc_keep, and gc_keep_lock. */
static void gc_read_free(struct gc_read *c)
{
	gc_cmds_end(c, false);
	if (c->locked && c->tasks && c->tasks_cap > gc_keep.tasks_cap) {
		kvfree(gc_keep.tasks);
		gc_keep.tasks = c->tasks;
		gc_keep.tasks_cap = c->tasks_cap;
		c->tasks = NULL;
	}
	kvfree(c->tasks);
	kfree(c->cmdline);
	gc_cg_free(c);
	if (c->locked)
		mutex_unlock(&gc_keep_lock);
	c->locked = false;
}

static int gc_read_init(struct gc_read *c)
{
	int ret;

	c->all = READ_ONCE(all_processes);
	gc_keep_take(c);
	c->cg_bits = GC_CG_BITS_MIN;
	c->chunk_full = true;	/* no chunk yet */
	c->cgs = kvcalloc(1U << c->cg_bits, sizeof(*c->cgs), GC_ALLOC);
	c->cmdline = kmalloc(GC_CMDLINE_MAX, GC_ALLOC);
	if (!c->cgs || !c->cmdline)
		return -ENOMEM;
	ret = gc_collect(c);
	if (ret)
		return ret;
	gc_cmds_begin(c);
	return 0;
}

/*
 * Once the processes are collected, and before anything is written: if
 * there are more than the buffer was sized for (as many bytes each as the
 * last document took, and a quarter more), a larger buffer at once rather
 * than several doublings.  If none can be had, growing entry by entry
 * still works.
 */
static void gc_fit(struct seq_file *m, unsigned int nr_tasks)
{
	size_t size = (size_t)nr_tasks * READ_ONCE(gc_last_per_task);

	size += size / 4;
	if (size > m->size)
		gc_resize(m, min_t(size_t, size, GC_DOC_MAX));
}

/*
 * The whole document in one show(), which grows the buffer as it goes
 * (gc_grow()), so nothing is done twice.
 */
static int gc_show(struct seq_file *m, void *v)
{
	struct gc_read c = { .m = m };
	bool first = true;
	unsigned int i;
	int ret;

	/* The head and the system figures take under 1 KiB. */
	ret = gc_grow(m, 2048);
	if (!ret)
		ret = gc_read_init(&c);
	if (ret) {
		gc_read_free(&c);
		return ret;
	}
	gc_fit(m, c.nr_tasks);

	seq_put_decimal_ull(m, "{\"version\":", GC_VERSION);
	seq_puts(m, ",\"source\":\"kernel\"");
	seq_put_decimal_ull(m, ",\"timestamp_ns\":", ktime_get_real_ns());
	seq_put_decimal_ull(m, ",\"uptime_ns\":", ktime_get_boottime_ns());
	gc_show_system(m, &c);
	seq_puts(m, ",\"processes\":[");

	for (i = 0; i < c.nr_tasks; i++) {
		if (!ret) {
			ret = gc_show_task(&c, c.tasks[i], &first);
			if (!ret && fatal_signal_pending(current))
				ret = -EINTR;
		}
		put_task_struct(c.tasks[i]);
		if (i % 16 == 15)
			cond_resched();
	}
	/* Each entry made room for this. */
	seq_puts(m, "\n]}\n");

	if (!ret && !seq_has_overflowed(m) && c.nr_tasks) {
		WRITE_ONCE(gc_last_size, m->count);
		WRITE_ONCE(gc_last_per_task, DIV_ROUND_UP(m->count, c.nr_tasks));
	}
	gc_cmds_end(&c, !ret && !seq_has_overflowed(m));
	gc_read_free(&c);
	return ret;
}

/* --- the document buffer of an open file -------------------------------- */

/*
 * What the next document is likely to need: the last one's size and a
 * quarter more, or with all_processes an estimate from the process count.
 */
static size_t gc_doc_size(void)
{
	size_t size = READ_ONCE(gc_last_size);

	size += size / 4;
	if (READ_ONCE(all_processes))
		size = max_t(size_t, size,
			     (size_t)gc_count_processes() * GC_PROC_SIZE_GUESS);
	return clamp_t(size_t, size, GC_BUF_MIN, GC_DOC_MAX);
}

/*
 * The spare document buffer if it holds the last document (@min bytes) and
 * not many more than @size, what the next one is likely to need; *@size is
 * then its size.  A document that outgrows it grows it in place.
 */
static char *gc_spare_take(size_t min, size_t *size)
{
	char *buf = NULL;
	size_t have = 0;

	spin_lock(&gc_spare_lock);
	if (gc_spare && gc_spare_size >= min) {
		buf = gc_spare;
		have = gc_spare_size;
		gc_spare = NULL;
		gc_spare_size = 0;
	}
	spin_unlock(&gc_spare_lock);
	if (buf && gc_too_big(have, *size)) {
		kvfree(buf);
		return NULL;
	}
	if (buf)
		*size = have;
	return buf;
}

/*
 * A document buffer no open file needs any more: kept as the spare unless
 * a larger one is, or it is much larger than the last document.
 */
static void gc_spare_put(char *buf, size_t size)
{
	size_t need = READ_ONCE(gc_last_size);

	if (!buf)
		return;
	if (gc_too_big(size, need + need / 4)) {
		kvfree(buf);
		return;
	}
	spin_lock(&gc_spare_lock);
	if (!gc_spare || gc_spare_size < size) {
		swap(buf, gc_spare);
		swap(size, gc_spare_size);
	}
	spin_unlock(&gc_spare_lock);
	kvfree(buf);
}

/*
 * At a read from offset 0, before seq_file takes its one page: a buffer
 * the size the document is likely to need, charged to the reader.  If
 * none can be had, show() grows seq_file's.
 */
static void gc_doc_begin(struct seq_file *m)
{
	size_t size;
	char *buf;

	mutex_lock(&m->lock);
	if (!m->buf) {
		size = gc_doc_size();
		buf = gc_spare_take(max_t(size_t, READ_ONCE(gc_last_size),
					  GC_BUF_MIN), &size);
		if (!buf)
			buf = kvmalloc(size, GC_ALLOC);
		if (buf) {
			m->buf = buf;
			m->size = size;
		}
	}
	mutex_unlock(&m->lock);
}

/*
 * Whether the document was read out and its buffer given back, and a read
 * at @pos (where the last one ended) has nothing left: end of file, with
 * no buffer taken again.
 */
static bool gc_doc_over(struct seq_file *m, loff_t pos)
{
	bool over;

	mutex_lock(&m->lock);
	over = !m->buf && m->index > 0 && !m->count && pos == m->read_pos;
	mutex_unlock(&m->lock);
	return over;
}

/* After a read: once the whole document was read out, give its buffer back. */
static void gc_doc_end(struct seq_file *m)
{
	size_t size = 0;
	char *buf = NULL;

	mutex_lock(&m->lock);
	if (m->buf && m->index > 0 && !m->count) {
		buf = m->buf;
		size = m->size;
		m->buf = NULL;
		m->size = 0;
	}
	mutex_unlock(&m->lock);
	gc_spare_put(buf, size);
}

/*
 * Only the procfs instances of the initial PID namespace serve the file:
 * a container's own /proc would show it host-wide command lines, IDs and
 * I/O counters that its PID namespace hides.  Nothing is allocated here
 * beyond seq_file's own: thousands of open files that are never read cost
 * no document buffer.
 */
static int gc_open(struct inode *inode, struct file *file)
{
	if (proc_pid_ns(inode->i_sb) != &init_pid_ns)
		return -EPERM;
	return single_open(file, gc_show, NULL);
}

/* A document buffer still held (not read out) is given back. */
static int gc_release(struct inode *inode, struct file *file)
{
	struct seq_file *m = file->private_data;

	gc_spare_put(m->buf, m->size);
	m->buf = NULL;
	return single_release(inode, file);
}

/*
 * A read from offset 0 starts a new document: refresh the swap figures and
 * size its buffer.  The buffer is given back once the document is read
 * out.
 */
static ssize_t gc_read_iter(struct kiocb *iocb, struct iov_iter *to)
{
	struct seq_file *m = iocb->ki_filp->private_data;
	ssize_t ret;

	if (iocb->ki_pos == 0) {
		gc_update_swap();
		gc_doc_begin(m);
	} else if (gc_doc_over(m, iocb->ki_pos)) {
		return 0;
	}
	ret = seq_read_iter(iocb, to);
	gc_doc_end(m);
	return ret;
}

static const struct proc_ops gc_proc_ops = {
	.proc_open	= gc_open,
	.proc_read_iter	= gc_read_iter,
	.proc_lseek	= seq_lseek,
	.proc_release	= gc_release,
};

/*
 * Whether /proc already has @name (an entry, a PID, "self"): proc_create()
 * would warn and fail without saying why.
 */
static bool gc_name_taken(const char *name)
{
	struct dentry *dentry = gc_lookup_positive(gc_procfs->mnt_root, name);

	if (IS_ERR(dentry))
		return false;
	dput(dentry);
	return true;
}

static int __init gc_init(void)
{
	struct file_system_type *procfs;
	struct cred *kcred;
	int ret, i;

	if (!proc_name || !*proc_name || strlen(proc_name) > NAME_MAX ||
	    strchr(proc_name, '/') || !strcmp(proc_name, ".") ||
	    !strcmp(proc_name, "..")) {
		pr_err("invalid proc_name\n");
		return -EINVAL;
	}
	/* 0 would not hide the file: proc_create() makes it 0444. */
	if (!proc_mode || proc_mode & ~0444) {
		pr_err("invalid proc_mode %#o: from 01 to 0444\n", proc_mode);
		return -EINVAL;
	}

	for (i = 0; i < 100; i++) {
		gc_pairs[2 * i] = '0' + i / 10;
		gc_pairs[2 * i + 1] = '0' + i % 10;
	}

	procfs = get_fs_type("proc");
	if (!procfs)
		return -ENODEV;
	gc_procfs = kern_mount(procfs);
	module_put(procfs->owner);	/* put_filesystem() */
	if (IS_ERR(gc_procfs)) {
		pr_err("cannot mount procfs\n");
		return PTR_ERR(gc_procfs);
	}
	/* init_task's: prepare_kernel_cred(NULL) is refused since 6.2. */
	kcred = prepare_kernel_cred(&init_task);
	if (!kcred) {
		ret = -ENOMEM;
		goto out_unmount;
	}
	gc_kcred = kcred;
	gc_meminfo.dentry = gc_lookup_positive(gc_procfs->mnt_root, "meminfo");
	if (IS_ERR(gc_meminfo.dentry)) {
		ret = PTR_ERR(gc_meminfo.dentry);
		pr_err("no meminfo in procfs (%d)\n", ret);
		goto out_put_cred;
	}
	gc_meminfo.mnt = mntget(gc_procfs);

	if (gc_name_taken(proc_name)) {
		pr_err("/proc/%s exists already\n", proc_name);
		ret = -EEXIST;
		goto out_put_path;
	}
	gc_entry = proc_create(proc_name, proc_mode, NULL, &gc_proc_ops);
	if (!gc_entry) {
		pr_err("cannot create /proc/%s\n", proc_name);
		ret = -ENOMEM;
		goto out_put_path;
	}
	if (proc_mode & 0044)
		pr_warn("proc_mode=%#o: users other than root can read /proc/%s, with every process's command line, cgroup path and I/O counters (rchar, wchar, syscr, syscw, read_bytes, write_bytes: what /proc/<pid>/io shows only to those allowed to ptrace the process), whatever hidepid= is set to\n",
			proc_mode, proc_name);
	pr_info("created /proc/%s\n", proc_name);
	return 0;

out_put_path:
	path_put(&gc_meminfo);
out_put_cred:
	put_cred(gc_kcred);
out_unmount:
	kern_unmount(gc_procfs);
	return ret;
}

/*
 * proc_remove() waits for reads in progress and releases files still open,
 * so no reader runs module code after it returns.
 */
static void __exit gc_exit(void)
{
	proc_remove(gc_entry);
	kvfree(gc_spare);
	gc_cmds_free(&gc_keep.cmds);
	gc_spares_free(&gc_keep);
	kvfree(gc_keep.tasks);
	kvfree(gc_keep.chunk);
	path_put(&gc_meminfo);
	put_cred(gc_kcred);
	kern_unmount(gc_procfs);
	pr_info("removed /proc/%s\n", proc_name);
}

module_init(gc_init);
module_exit(gc_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("gestor authors");
MODULE_DESCRIPTION("Container processes and system usage as JSON in /proc");
MODULE_VERSION("3.0.0");
