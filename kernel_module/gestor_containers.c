// SPDX-License-Identifier: GPL-2.0
/*
 * gestor_containers - publish container processes as JSON in /proc
 *
 * Reading /proc/sysinfo_202200075 (the name is the proc_name parameter)
 * returns one JSON document (schema/sysinfo.schema.json in the gestor
 * repository): system memory and CPU time, and one entry per process that
 * runs in a container, with the 64-hex container ID taken from its cgroup
 * path.  With all_processes=1 every process is listed.
 *
 * Only integers are exported (ns, KiB, bytes, hundredths of a percent); the
 * reader computes rates from two snapshots, so a read never waits.
 *
 * Locking: the task list is walked under rcu_read_lock() only to take task
 * references.  Everything else is gathered per task afterwards: one short
 * RCU section that takes spinlocks but never sleeps (cgroup path, name,
 * thread-group totals, the mm), then, with no lock held, what may sleep (the
 * command line from the process's memory, mmput()).
 *
 * Output: each process entry is formatted into a scratch buffer large enough
 * for the longest possible entry, then copied into the seq_file at once.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/cgroup.h>
#include <linux/ctype.h>
#include <linux/kernel_stat.h>
#include <linux/ktime.h>
#include <linux/minmax.h>
#include <linux/mm.h>
#include <linux/module.h>
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
#include <linux/vmstat.h>

#define GC_VERSION		1
#define GC_ID_LEN		64
#define GC_CMDLINE_MAX		1024
/* A container process takes about 410 bytes, a kernel thread 250. */
#define GC_PROC_SIZE_GUESS	512
/* Escaping turns one byte into at most 6 ("\\u00XX"). */
#define GC_REC_MAX		(1024 + 6 * (TASK_COMM_LEN + GC_CMDLINE_MAX + \
					     PATH_MAX))
#define GC_BUF_MIN		(64 * 1024)
#define GC_BUF_MAX		(256 * 1024 * 1024)

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
		 "Permissions of the /proc file, at most 0444 (default 0400)");

static struct proc_dir_entry *gc_entry;

/* Size of the last complete document, to pre-size the next read's buffer. */
static size_t gc_last_size;

/* Scratch state of one read, allocated before any lock is taken. */
struct gc_read {
	struct task_struct **tasks;
	unsigned int nr_tasks;
	char *path;		/* PATH_MAX: cgroup path that is printed */
	char *tmp;		/* PATH_MAX: cgroup path being examined */
	char *cmdline;		/* GC_CMDLINE_MAX */
	char *rec;		/* GC_REC_MAX: the entry being formatted */
	size_t rec_len;
	unsigned long totalram;	/* pages */
	bool all;
};

/* What is printed for one process (the thread group of a leader). */
struct gc_proc {
	pid_t pid;
	pid_t ppid;
	char state;
	char comm[TASK_COMM_LEN];
	u64 cpu_ns;
	u64 start_ns;
	struct task_io_accounting io;
	unsigned long rss;	/* pages */
	unsigned long vsz;	/* pages */
	size_t cmdline_len;
};

/* --- JSON output ------------------------------------------------------ */

/*
 * The entry buffer is sized for the longest entry (GC_REC_MAX), so these
 * never run out of room; the check only guards against a mistake.
 */
static void gc_mem(struct gc_read *c, const void *src, size_t len)
{
	if (WARN_ON_ONCE(len > GC_REC_MAX - c->rec_len))
		return;
	memcpy(c->rec + c->rec_len, src, len);
	c->rec_len += len;
}

#define gc_lit(c, s)	gc_mem(c, s, sizeof(s) - 1)

static void gc_u64(struct gc_read *c, u64 num)
{
	char digits[20];
	int i = sizeof(digits);

	do {
		digits[--i] = '0' + do_div(num, 10);
	} while (num);
	gc_mem(c, digits + i, sizeof(digits) - i);
}

/* Print @key (with its punctuation) and decimal @num. */
static void gc_num(struct gc_read *c, const char *key, u64 num)
{
	gc_mem(c, key, strlen(key));
	gc_u64(c, num);
}

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
 * Print @len bytes of @str as a JSON string.  '"', '\\', '\n' and '\t' get
 * their short escapes, other control characters and DEL \u00XX, and each
 * byte that is not part of well-formed UTF-8 becomes U+FFFD, so the output
 * is valid UTF-8 whatever a process calls itself.
 */
static void gc_string(struct gc_read *c, const char *str, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const u8 *s = (const u8 *)str;
	size_t i = 0, run = 0;
	char esc[6];

	gc_lit(c, "\"");
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
		gc_mem(c, s + run, i - run);
		switch (ch) {
		case '"':
			gc_lit(c, "\\\"");
			break;
		case '\\':
			gc_lit(c, "\\\\");
			break;
		case '\n':
			gc_lit(c, "\\n");
			break;
		case '\t':
			gc_lit(c, "\\t");
			break;
		default:
			if (ch >= 0x80) {
				gc_lit(c, "\xef\xbf\xbd");
				break;
			}
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[ch >> 4];
			esc[5] = hex[ch & 0xf];
			gc_mem(c, esc, sizeof(esc));
			break;
		}
		run = ++i;
	}
	gc_mem(c, s + run, i - run);
	gc_lit(c, "\"");
}

/* --- container ID from the cgroup path ----------------------------------- */

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

/*
 * Return the container ID in cgroup path @path, or NULL.  The first
 * component that names a container wins: a bare 64-hex ID (cgroupfs driver,
 * "/docker/<id>", kubepods) or a systemd scope "<prefix><id>.scope" of
 * Docker, containerd, Podman or CRI-O.
 */
static const char *gc_find_id(const char *path)
{
	static const char * const prefixes[] = {
		"docker-", "cri-containerd-", "libpod-", "crio-",
	};
	static const char suffix[] = ".scope";
	const size_t slen = sizeof(suffix) - 1;
	const char *comp = path;

	while (*comp) {
		const char *end = strchrnul(comp, '/');
		size_t len = end - comp;
		unsigned int i;

		if (gc_is_id(comp, len))
			return comp;
		for (i = 0; i < ARRAY_SIZE(prefixes); i++) {
			size_t plen = strlen(prefixes[i]);

			if (len == plen + GC_ID_LEN + slen &&
			    !memcmp(comp, prefixes[i], plen) &&
			    !memcmp(end - slen, suffix, slen) &&
			    gc_is_id(comp + plen, GC_ID_LEN))
				return comp + plen;
		}
		comp = *end ? end + 1 : end;
	}
	return NULL;
}

static void gc_cgroup_path(struct cgroup *cgrp, char *buf)
{
	if (cgroup_path(cgrp, buf, PATH_MAX) < 0)
		buf[0] = '\0';
}

/*
 * Find the container @p runs in: first from its cgroup v2 path, then from
 * the paths of the cgroup v1 hierarchies its controllers are in.  On return
 * c->path holds the path the ID was found in, or the cgroup v2 path.
 *
 * Called under rcu_read_lock(), which keeps the css_set and its cgroups
 * alive; cgroup_path() only takes a spinlock.
 */
static const char *gc_container_id(struct gc_read *c, struct task_struct *p)
{
	struct cgroup *seen[CGROUP_SUBSYS_COUNT];
	struct css_set *cset = task_css_set(p);
	struct cgroup *dfl = cset->dfl_cgrp;
	unsigned int nr_seen = 0, i, j;
	const char *id;

	gc_cgroup_path(dfl, c->path);
	id = gc_find_id(c->path);
	if (id)
		return id;

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

		gc_cgroup_path(cgrp, c->tmp);
		id = gc_find_id(c->tmp);
		if (id) {
			swap(c->path, c->tmp);
			return id;
		}
	}
	return NULL;
}

/* --- per-process data --------------------------------------------------- */

/*
 * Name, parent, thread-group totals (CPU time, I/O counters) and a
 * reference on the mm, under rcu_read_lock() (spinlocks only).  Like
 * thread_group_cputime(), a lockless pass is retried under sig->stats_lock
 * if a thread exited meanwhile (__exit_signal() moves its counters into the
 * signal_struct under that seqlock).
 *
 * Returns the mm with a reference (mmput() it) and stores a reference to a
 * thread that uses it in *@mm_task, or returns NULL for kernel threads and
 * processes whose threads have all released their mm (zombies).  The leader
 * may have exited while other threads still run: then the mm is found
 * through one of them.
 */
static struct mm_struct *gc_group_stats(struct task_struct *p,
					struct gc_proc *st,
					struct task_struct **mm_task)
{
	struct signal_struct *sig = p->signal;
	bool kthread = p->flags & PF_KTHREAD;
	struct mm_struct *mm = NULL;
	struct task_struct *t;
	unsigned int seq, nextseq;
	unsigned long flags;

	*mm_task = NULL;
	st->pid = task_tgid_nr(p);
	st->ppid = pid_alive(p) ? task_tgid_nr(rcu_dereference(p->real_parent))
				: 0;
	st->state = task_state_to_char(p);
	st->start_ns = p->start_boottime;

	nextseq = 0;
	do {
		seq = nextseq;
		flags = read_seqbegin_or_lock_irqsave(&sig->stats_lock, &seq);
		st->cpu_ns = sig->sum_sched_runtime;
		st->io = sig->ioac;
		for_each_thread(p, t) {
			st->cpu_ns += READ_ONCE(t->se.sum_exec_runtime);
			task_io_accounting_add(&st->io, &t->ioac);
		}
		nextseq = 1;
	} while (need_seqretry(&sig->stats_lock, seq));
	done_seqretry_irqrestore(&sig->stats_lock, seq, flags);

	/* As get_task_comm() and get_task_mm(), under task_lock(). */
	task_lock(p);
	strscpy_pad(st->comm, p->comm, sizeof(st->comm));
	if (p->mm && !kthread) {
		mm = p->mm;
		mmget(mm);
		*mm_task = p;
	}
	task_unlock(p);
	if (!mm && !kthread) {
		for_each_thread(p, t) {
			task_lock(t);
			if (t->mm) {
				mm = t->mm;
				mmget(mm);
				*mm_task = t;
			}
			task_unlock(t);
			if (mm)
				break;
		}
	}
	if (mm)
		get_task_struct(*mm_task);
	return mm;
}

/*
 * Copy the command line of @t (which uses @mm) into c->cmdline: arguments
 * joined by single spaces, at most GC_CMDLINE_MAX bytes.  As in
 * /proc/<pid>/cmdline, a process that overwrote its argv with
 * setproctitle(3) (the last argv byte is not NUL) gets the string up to the
 * first NUL.  May sleep: called with no lock held.
 */
static size_t gc_read_cmdline(struct gc_read *c, struct task_struct *t,
			      struct mm_struct *mm)
{
	unsigned long arg_start, arg_end, len;
	char *buf = c->cmdline;
	bool proctitle = false;
	int got, i;
	char last;

	spin_lock(&mm->arg_lock);
	arg_start = mm->arg_start;
	arg_end = mm->arg_end;
	spin_unlock(&mm->arg_lock);
	if (arg_start >= arg_end)
		return 0;

	len = min(arg_end - arg_start, (unsigned long)GC_CMDLINE_MAX);
	got = access_process_vm(t, arg_start, buf, len, FOLL_ANON);
	if (got <= 0)
		return 0;

	if (arg_end - arg_start > GC_CMDLINE_MAX) {
		if (access_process_vm(t, arg_end - 1, &last, 1, FOLL_ANON) == 1)
			proctitle = last != '\0';
	} else if ((unsigned long)got == len) {
		proctitle = buf[got - 1] != '\0';
		if (!proctitle)
			got--;	/* the NUL that ends the last argument */
	}
	if (proctitle)
		return strnlen(buf, got);

	for (i = 0; i < got; i++)
		if (buf[i] == '\0')
			buf[i] = ' ';
	return got;
}

/*
 * What may sleep, with no lock held: memory figures and the command line.
 * Drops the references gc_group_stats() took.
 */
static void gc_mm_stats(struct gc_read *c, struct gc_proc *st,
			struct mm_struct *mm, struct task_struct *mm_task)
{
	st->rss = 0;
	st->vsz = 0;
	st->cmdline_len = 0;
	if (!mm)
		return;
	st->rss = get_mm_rss(mm);
	st->vsz = READ_ONCE(mm->total_vm);
	st->cmdline_len = gc_read_cmdline(c, mm_task, mm);
	mmput(mm);
	put_task_struct(mm_task);
}

/* Format one process entry into c->rec. */
static void gc_format_proc(struct gc_read *c, const struct gc_proc *st,
			   const char *id)
{
	u64 pct = 0;

	if (c->totalram)
		pct = min_t(u64, div64_ul((u64)st->rss * 10000, c->totalram),
			    10000);

	c->rec_len = 0;
	gc_num(c, "{\"pid\":", st->pid);
	gc_num(c, ",\"ppid\":", st->ppid);
	gc_lit(c, ",\"comm\":");
	gc_string(c, st->comm, strnlen(st->comm, sizeof(st->comm)));
	gc_lit(c, ",\"cmdline\":");
	gc_string(c, c->cmdline, st->cmdline_len);
	if (id) {
		gc_lit(c, ",\"container_id\":\"");
		gc_mem(c, id, GC_ID_LEN);
		gc_lit(c, "\",\"cgroup\":");
	} else {
		gc_lit(c, ",\"container_id\":null,\"cgroup\":");
	}
	gc_string(c, c->path, strlen(c->path));
	gc_lit(c, ",\"state\":\"");
	gc_mem(c, &st->state, 1);
	gc_num(c, "\",\"rss_kib\":", (u64)st->rss << (PAGE_SHIFT - 10));
	gc_num(c, ",\"vsz_kib\":", (u64)st->vsz << (PAGE_SHIFT - 10));
	gc_num(c, ",\"mem_pct_x100\":", pct);
	gc_num(c, ",\"cpu_time_ns\":", st->cpu_ns);
	gc_num(c, ",\"start_time_ns\":", st->start_ns);
	gc_num(c, ",\"read_bytes\":", st->io.read_bytes);
	gc_num(c, ",\"write_bytes\":", st->io.write_bytes);
	gc_num(c, ",\"rchar\":", st->io.rchar);
	gc_num(c, ",\"wchar\":", st->io.wchar);
	gc_num(c, ",\"syscr\":", st->io.syscr);
	gc_num(c, ",\"syscw\":", st->io.syscw);
	gc_lit(c, "}");
}

/* --- system-wide figures ------------------------------------------------- */

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
	u64 irq = 0, softirq = 0, steal = 0;
	unsigned long avail, swap_free;
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

	si_meminfo(&si);
	avail = si_mem_available();
	cached = global_node_page_state(NR_FILE_PAGES) -
		 total_swapcache_pages() - si.bufferram;
	/*
	 * Only the free swap count (nr_swap_pages) is exported to modules;
	 * total_swap_pages and si_swapinfo() are not.  Free swap is reported
	 * as the total too: a lower bound, exact when no swap is in use.
	 */
	swap_free = max(get_nr_swap_pages(), 0L);
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
	seq_put_decimal_ull(m, ",\"swap_total_kib\":",
			    (u64)swap_free << (PAGE_SHIFT - 10));
	seq_put_decimal_ull(m, ",\"swap_free_kib\":",
			    (u64)swap_free << (PAGE_SHIFT - 10));
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
 * Take a reference on every thread-group leader.  The array is allocated
 * before rcu_read_lock(); if processes were created in between and it is
 * too small, drop the references and retry with the count just seen.
 */
static int gc_collect(struct gc_read *c)
{
	unsigned int cap = gc_count_processes(), nr, i, tries;
	struct task_struct *p;

	for (tries = 0; tries < 8; tries++) {
		cap += cap / 8 + 64;
		c->tasks = kvmalloc_array(cap, sizeof(*c->tasks), GFP_KERNEL);
		if (!c->tasks)
			return -ENOMEM;

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
			return 0;
		}
		for (i = 0; i < cap; i++)
			put_task_struct(c->tasks[i]);
		kvfree(c->tasks);
		c->tasks = NULL;
		cap = nr;
	}
	return -EAGAIN;
}

static void gc_read_free(struct gc_read *c)
{
	kvfree(c->tasks);
	kvfree(c->rec);
	kfree(c->cmdline);
	kfree(c->tmp);
	kfree(c->path);
}

static int gc_read_init(struct gc_read *c)
{
	c->all = READ_ONCE(all_processes);
	c->path = kmalloc(PATH_MAX, GFP_KERNEL);
	c->tmp = kmalloc(PATH_MAX, GFP_KERNEL);
	c->cmdline = kmalloc(GC_CMDLINE_MAX, GFP_KERNEL);
	c->rec = kvmalloc(GC_REC_MAX, GFP_KERNEL);
	if (!c->path || !c->tmp || !c->cmdline || !c->rec)
		return -ENOMEM;
	return gc_collect(c);
}

/*
 * The whole document in one show(): seq_file calls it again with a buffer
 * twice as large if it overflowed, so stop gathering as soon as it has.
 */
static int gc_show(struct seq_file *m, void *v)
{
	struct gc_read c = {};
	unsigned int i;
	bool first = true, stop = false;
	int ret;

	ret = gc_read_init(&c);
	if (ret) {
		gc_read_free(&c);
		return ret;
	}

	seq_put_decimal_ull(m, "{\"version\":", GC_VERSION);
	seq_puts(m, ",\"source\":\"kernel\"");
	seq_put_decimal_ull(m, ",\"timestamp_ns\":", ktime_get_real_ns());
	seq_put_decimal_ull(m, ",\"uptime_ns\":", ktime_get_boottime_ns());
	gc_show_system(m, &c);
	seq_puts(m, ",\"processes\":[");

	for (i = 0; i < c.nr_tasks; i++) {
		struct task_struct *p = c.tasks[i], *mm_task = NULL;
		struct mm_struct *mm = NULL;
		struct gc_proc st;
		const char *id;
		bool listed;

		if (!stop) {
			rcu_read_lock();
			id = gc_container_id(&c, p);
			listed = id || c.all;
			if (listed)
				mm = gc_group_stats(p, &st, &mm_task);
			rcu_read_unlock();
			if (listed) {
				gc_mm_stats(&c, &st, mm, mm_task);
				gc_format_proc(&c, &st, id);
				seq_puts(m, first ? "\n" : ",\n");
				seq_write(m, c.rec, c.rec_len);
				first = false;
			}
			if (seq_has_overflowed(m))
				stop = true;
			if (fatal_signal_pending(current)) {
				ret = -EINTR;
				stop = true;
			}
		}
		put_task_struct(p);
		cond_resched();
	}
	seq_puts(m, "\n]}\n");

	if (!ret && !seq_has_overflowed(m))
		WRITE_ONCE(gc_last_size, m->count);
	gc_read_free(&c);
	return ret;
}

/*
 * Pre-size the seq_file buffer so that show() runs once: the last document's
 * size plus a margin, or with all_processes an estimate from the process
 * count.
 */
static int gc_open(struct inode *inode, struct file *file)
{
	size_t size = READ_ONCE(gc_last_size);

	size += size / 4;
	if (READ_ONCE(all_processes))
		size = max_t(size_t, size,
			     (size_t)gc_count_processes() * GC_PROC_SIZE_GUESS);
	size = clamp_t(size_t, size, GC_BUF_MIN, GC_BUF_MAX);
	return single_open_size(file, gc_show, NULL, size);
}

static const struct proc_ops gc_proc_ops = {
	.proc_open	= gc_open,
	.proc_read_iter	= seq_read_iter,
	.proc_lseek	= seq_lseek,
	.proc_release	= single_release,
};

static int __init gc_init(void)
{
	if (!proc_name || !*proc_name || strchr(proc_name, '/') ||
	    !strcmp(proc_name, ".") || !strcmp(proc_name, "..")) {
		pr_err("invalid proc_name\n");
		return -EINVAL;
	}
	if (proc_mode & ~0444) {
		pr_err("invalid proc_mode %#o: at most 0444\n", proc_mode);
		return -EINVAL;
	}

	gc_entry = proc_create(proc_name, proc_mode, NULL, &gc_proc_ops);
	if (!gc_entry) {
		pr_err("cannot create /proc/%s\n", proc_name);
		return -ENOMEM;
	}
	pr_info("created /proc/%s\n", proc_name);
	return 0;
}

/*
 * proc_remove() waits for reads in progress and releases files still open,
 * so no reader runs module code after it returns.
 */
static void __exit gc_exit(void)
{
	proc_remove(gc_entry);
	pr_info("removed /proc/%s\n", proc_name);
}

module_init(gc_init);
module_exit(gc_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("gestor authors");
MODULE_DESCRIPTION("Container processes and system usage as JSON in /proc");
MODULE_VERSION("1.0.0");
