// SPDX-License-Identifier: GPL-2.0
/*
 * gvm - the workloads and probes that kernel_module/tests run inside the
 * qemu guest (built static on the host, copied into the initramfs).
 *
 *   gvm incg DIR CMD...        move into cgroup DIR (cgroup.procs), exec CMD
 *   gvm burn                   burn CPU forever
 *   gvm hold MIB               touch MIB MiB of anonymous memory, then sleep
 *   gvm sleep                  sleep forever
 *   gvm hostile                re-exec with a hostile name and argv, sleep
 *   gvm longargs               re-exec with 1,500 bytes of argv, sleep
 *   gvm zleader                leader thread exits, another thread lives on
 *   gvm zombie                 leave an unreaped child (its pid in GVM_READY)
 *   gvm spawn N                N processes in all (this one included) that
 *                              sleep; on SIGTERM all are killed and reaped
 *   gvm reaper MS              reap a child that burnt MS ms of CPU, sleep
 *   gvm cancelwrite DEV MIB    write MIB MiB to block device DEV, zero them
 *                              out (BLKZEROOUT) before writeback, sleep
 *   gvm swapper MIB            touch MIB MiB, page them out to swap, sleep
 *   gvm retitle DONE [share]   on SIGUSR1 rewrite its argv in place
 *                              ("retitle" becomes "titled1", "titled2"...),
 *                              on SIGHUP move its arguments (PR_SET_MM) to
 *                              "gvm moved", on SIGUSR2 exec itself with one
 *                              more argument, on SIGALRM only wake up; DONE
 *                              then says which; with share, a child process
 *                              shares its memory (CLONE_VM) and sleeps
 *   gvm poke PID TEXT          write TEXT over PID's argv[1] (from its
 *                              /proc/PID/stat arg_start) through
 *                              /proc/PID/mem: PID does not run
 *   gvm execloop               exec itself forever (no ASLR), alternating
 *                              two argument lists of different lengths
 *   gvm deepcg DIR LEN CMD...  create cgroups below DIR (a cgroup whose path
 *                              in its hierarchy is DIR minus the mount point)
 *                              until the path is LEN bytes, move there, exec
 *   gvm mmstall DEV RELEASED   hold a child's mmap_lock through a read of
 *                              /proc/<child>/mem that waits on a page of the
 *                              nbd device DEV (served by this process), with
 *                              a writer queued; GVM_READY gets the child's
 *                              pid; SIGUSR1 answers the read (RELEASED is
 *                              created once all is unblocked), SIGTERM ends
 *   gvm churn SECS             fork children that exit at once, for SECS
 *   gvm tchurn SECS            create threads that exit at once, for SECS
 *   gvm readers N SECS FILE OUTDIR
 *                              N processes read FILE in a loop, check every
 *                              document is valid JSON, that no entry is a
 *                              reaped task (state X, or ppid 0 in a
 *                              container) and that the command lines of the
 *                              pids in $GVM_EXECLOOP are whole; stop after
 *                              SECS or when FILE disappears; summary in
 *                              OUTDIR, and OUTDIR/min-reads-ID once reader
 *                              ID has read 5 times
 *   gvm readn FILE N [BYTES]   open/read/close N times (only BYTES bytes)
 *   gvm holdopen FILE READY GO open FILE, read a little, create READY, wait
 *                              for GO to exist, read again, report errno
 *   gvm uffdread FILE READY GO read FILE into a buffer whose pages fault
 *                              into userfaultfd: once the read is stuck
 *                              there (mid-read), create READY; when GO
 *                              exists, let it finish; read again, report
 *   gvm tryread FILE           read FILE: "ok BYTES" or "errno NAME"
 *   gvm within SECS CMD...     run CMD (stdout to /dev/null); "done rc=N" if
 *                              it ends within SECS, else "timeout" (exit 2,
 *                              CMD left running)
 *   gvm json FILE              exit 0 if FILE is one valid JSON document
 *   gvm dump DIR [sysfirst]    ground truth: cgroup, stat, statm and io of
 *                              every process (DIR/procs.txt), and uptime,
 *                              date, meminfo, /proc/stat's cpu line, taken
 *                              after the processes (or before: sysfirst)
 *   gvm timeread FILE N        time N whole reads of FILE (ms)
 *   gvm scan N [all]           time N userspace scans of /proc gathering
 *                              the module's fields, as JSON (ms)
 *   gvm compare FILE ROUNDS    ROUNDS x (3 timed reads of FILE, 1 scan);
 *                              with GVM_ACTIVE=PATH (gvm spawn N active),
 *                              the spawned processes run before each
 *   gvm spawn N active         as spawn, but each process does a little work
 *                              whenever gvm compare wakes them (SIGUSR1 to
 *                              their process group; a counter shared
 *                              through the file $GVM_ACTIVE says they did)
 *   gvm numahint               a thread runs until NUMA balancing has
 *                              scanned this process's memory 4 times (so
 *                              the pages it did not touch meanwhile, its
 *                              argument page among them, carry NUMA hinting
 *                              faults), then sleeps; GVM_READY gets
 *                              "scans N" (N < 0: NUMA balancing never ran)
 *   gvm memprobe FILE N REF    in its memory cgroup: what one read of FILE
 *                              charges mid-document and after it, and what
 *                              N opens of FILE and of REF (another seq_file
 *                              of procfs) charge, as key=value
 *   gvm spawnvm N              N processes (CLONE_VM: one mm, a kernel stack
 *                              each) that sleep; on SIGTERM all are killed
 *   gvm bigread FILE OUT       read FILE once (ms, bytes, the memory cgroup's
 *                              charge mid-read and its peak), into OUT
 *
 * With GVM_READY=PATH in the environment, long-running workloads create PATH
 * once they are set up.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/nbd.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ID_LEN 64
#define CMDLINE_MAX 1024

/*
 * The hostile name and argv; tests/check_output.py holds the same bytes.
 * Keep both in step.
 */
static const char hostile_comm[] = "q\"\\\n%s%n\xff\x01\xc3";
static char *const hostile_argv[] = {
	"/bin/h\"ost\\ile", "line1\nline2", "%s%n%x", "tab\there", "",
	"\xff\xfe", "caf\xc3\xa9", "\xe2\x82", "A", "\x01\x1f\x7f",
	"emoji\xf0\x9f\x98\x80", "\xed\xa0\x80", "\xc0\xaf", "end", NULL,
};

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("gvm: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Create @path at once (through a rename), holding @text if not NULL. */
static void put_file(const char *path, const char *text)
{
	char tmp[4096];
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return;
	if (text && write(fd, text, strlen(text)) < 0)
		die("write %s: %s", tmp, strerror(errno));
	close(fd);
	rename(tmp, path);
}

/* Create $GVM_READY, holding @text if not NULL. */
static void mark_ready_text(const char *text)
{
	const char *path = getenv("GVM_READY");

	if (path)
		put_file(path, text);
}

static void mark_ready(void)
{
	mark_ready_text(NULL);
}

static void sleep_forever(void)
{
	mark_ready();
	for (;;)
		pause();
}

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY);

	if (fd < 0 || write(fd, text, strlen(text)) < 0)
		die("cannot write %s: %s", path, strerror(errno));
	close(fd);
}

/* Read a whole file into a growing buffer; returns length or -errno. */
static ssize_t read_all(int fd, char **buf, size_t *cap)
{
	size_t len = 0;

	for (;;) {
		ssize_t n;

		if (len == *cap) {
			*cap = *cap ? *cap * 2 : 1 << 20;
			*buf = realloc(*buf, *cap);
			if (!*buf)
				die("out of memory");
		}
		n = read(fd, *buf + len, *cap - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return len;
		len += n;
	}
}

/* --- JSON validation (RFC 8259, UTF-8 checked) ------------------------ */

struct jp {
	const unsigned char *s;
	size_t n;
	size_t i;
};

static void jp_ws(struct jp *p)
{
	while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' ||
			       p->s[p->i] == '\n' || p->s[p->i] == '\r'))
		p->i++;
}

static int jp_utf8(struct jp *p)
{
	const unsigned char *s = p->s + p->i;
	size_t left = p->n - p->i;
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n, k;

	if (s[0] < 0xc2)
		return -1;
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
		return -1;
	}
	if (left < n || s[1] < lo || s[1] > hi)
		return -1;
	for (k = 2; k < n; k++)
		if ((s[k] & 0xc0) != 0x80)
			return -1;
	p->i += n;
	return 0;
}

static int jp_string(struct jp *p)
{
	if (p->i >= p->n || p->s[p->i] != '"')
		return -1;
	p->i++;
	while (p->i < p->n) {
		unsigned char c = p->s[p->i];

		if (c == '"') {
			p->i++;
			return 0;
		}
		if (c < 0x20)
			return -1;
		if (c == '\\') {
			int k;

			if (++p->i >= p->n)
				return -1;
			c = p->s[p->i++];
			if (c == 'u') {
				for (k = 0; k < 4; k++, p->i++)
					if (p->i >= p->n ||
					    !strchr("0123456789abcdefABCDEF",
						    p->s[p->i]) || !p->s[p->i])
						return -1;
			} else if (!strchr("\"\\/bfnrt", c) || !c) {
				return -1;
			}
			continue;
		}
		if (c >= 0x80) {
			if (jp_utf8(p))
				return -1;
			continue;
		}
		p->i++;
	}
	return -1;
}

static int jp_digits(struct jp *p)
{
	size_t start = p->i;

	while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9')
		p->i++;
	return p->i > start ? 0 : -1;
}

static int jp_number(struct jp *p)
{
	if (p->i < p->n && p->s[p->i] == '-')
		p->i++;
	if (p->i < p->n && p->s[p->i] == '0')
		p->i++;
	else if (jp_digits(p))
		return -1;
	if (p->i < p->n && p->s[p->i] == '.') {
		p->i++;
		if (jp_digits(p))
			return -1;
	}
	if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
		p->i++;
		if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-'))
			p->i++;
		if (jp_digits(p))
			return -1;
	}
	return 0;
}

static int jp_literal(struct jp *p, const char *lit)
{
	size_t len = strlen(lit);

	if (p->n - p->i < len || memcmp(p->s + p->i, lit, len))
		return -1;
	p->i += len;
	return 0;
}

static int jp_value(struct jp *p, int depth)
{
	unsigned char c;

	if (depth > 64)
		return -1;
	jp_ws(p);
	if (p->i >= p->n)
		return -1;
	c = p->s[p->i];
	if (c == '{' || c == '[') {
		unsigned char close = c == '{' ? '}' : ']';

		p->i++;
		jp_ws(p);
		if (p->i < p->n && p->s[p->i] == close) {
			p->i++;
			return 0;
		}
		for (;;) {
			if (c == '{') {
				jp_ws(p);
				if (jp_string(p))
					return -1;
				jp_ws(p);
				if (p->i >= p->n || p->s[p->i++] != ':')
					return -1;
			}
			if (jp_value(p, depth + 1))
				return -1;
			jp_ws(p);
			if (p->i >= p->n)
				return -1;
			if (p->s[p->i] == ',') {
				p->i++;
				continue;
			}
			if (p->s[p->i++] == close)
				return 0;
			return -1;
		}
	}
	if (c == '"')
		return jp_string(p);
	if (c == 't')
		return jp_literal(p, "true");
	if (c == 'f')
		return jp_literal(p, "false");
	if (c == 'n')
		return jp_literal(p, "null");
	return jp_number(p);
}

/* 0 if buf is exactly one JSON object (whitespace around allowed). */
static int json_check(const char *buf, size_t len)
{
	struct jp p = { (const unsigned char *)buf, len, 0 };

	jp_ws(&p);
	if (p.i >= p.n || p.s[p.i] != '{' || jp_value(&p, 0))
		return -1;
	jp_ws(&p);
	return p.i == p.n ? 0 : -1;
}

/* --- workloads ------------------------------------------------------- */

static int cmd_incg(int argc, char **argv)
{
	char path[4096], pid[32];

	if (argc < 4)
		die("usage: incg DIR CMD...");
	snprintf(path, sizeof(path), "%s/cgroup.procs", argv[2]);
	snprintf(pid, sizeof(pid), "%d\n", getpid());
	write_file(path, pid);
	execvp(argv[3], argv + 3);
	die("exec %s: %s", argv[3], strerror(errno));
	return 1;
}

static int cmd_burn(void)
{
	volatile unsigned long x = 0;

	mark_ready();
	for (;;)
		x++;
	return 0;
}

static int cmd_hold(int argc, char **argv)
{
	size_t len, i;
	char *mem;

	if (argc < 3)
		die("usage: hold MIB");
	len = strtoul(argv[2], NULL, 10) << 20;
	mem = mmap(NULL, len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	for (i = 0; i < len; i += 4096)
		mem[i] = 1;
	sleep_forever();
	return 0;
}

static int cmd_hostile(void)
{
	if (!getenv("GVM_HOSTILE")) {
		setenv("GVM_HOSTILE", "1", 1);
		execv("/proc/self/exe", hostile_argv);
		die("exec: %s", strerror(errno));
	}
	if (prctl(PR_SET_NAME, hostile_comm) < 0)
		die("prctl: %s", strerror(errno));
	sleep_forever();
	return 0;
}

/*
 * About 1,400 bytes of argv: "gvm longargs " (13 bytes joined), 1010 'a'
 * and the 2-byte "\xc3\xa9" at offsets 1023-1024, so that the 1,024-byte
 * cut falls inside it, then 400 'b'.
 */
static int cmd_longargs(void)
{
	static char first[1100], pad[600];
	char *args[] = { "gvm", "longargs", first, pad, NULL };

	if (getenv("GVM_LONG"))
		sleep_forever();
	setenv("GVM_LONG", "1", 1);
	memset(first, 'a', 1010);
	memcpy(first + 1010, "\xc3\xa9", 2);
	memset(pad, 'b', 400);
	execv("/proc/self/exe", args);
	die("exec: %s", strerror(errno));
	return 1;
}

static void *zl_thread(void *arg)
{
	size_t len = 8 << 20, i;
	char *mem = malloc(len);

	for (i = 0; mem && i < len; i += 4096)
		mem[i] = 1;
	sleep_forever();
	return arg;
}

static int cmd_zleader(void)
{
	pthread_t t;

	if (pthread_create(&t, NULL, zl_thread, NULL))
		die("pthread_create");
	pthread_exit(NULL);
	return 0;
}

static int cmd_zombie(void)
{
	pid_t pid = fork();
	char text[32];

	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0)
		_exit(0);
	snprintf(text, sizeof(text), "%d\n", pid);
	mark_ready_text(text);
	for (;;)
		pause();
	return 0;
}

static volatile sig_atomic_t got_term;

static void on_term(int sig)
{
	got_term = 1;
}

/*
 * gvm spawn N active: a counter shared through a file (GVM_ACTIVE) that
 * each process adds one to whenever it has worked (SIGUSR1), and the
 * process group gvm compare signals.
 */
struct active {
	long pgid;
	long procs;
	long worked;
};

static struct active *active;

/* A little work: what a process that wakes up to serve something does. */
static void active_work(void)
{
	volatile unsigned long x = 0;
	char buf[2048];
	int i;

	for (i = 0; i < 2000; i++)
		x += i * i;
	memset(buf, (int)x, sizeof(buf));
	x += buf[x % sizeof(buf)];
	__atomic_add_fetch(&active->worked, 1, __ATOMIC_SEQ_CST);
}

/* Map $GVM_ACTIVE (created) as the shared counter. */
static struct active *active_map(int create)
{
	const char *path = getenv("GVM_ACTIVE");
	struct active *a;
	int fd;

	if (!path)
		die("GVM_ACTIVE is not set");
	fd = open(path, O_RDWR | (create ? O_CREAT | O_TRUNC : 0), 0644);
	if (fd < 0 || (create && ftruncate(fd, sizeof(*a))))
		die("%s: %s", path, strerror(errno));
	a = mmap(NULL, sizeof(*a), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (a == MAP_FAILED)
		die("mmap %s: %s", path, strerror(errno));
	close(fd);
	return a;
}

/*
 * Fork @n sleeping children (with active, each works at every SIGUSR1),
 * write one byte to @ready_fd, and on SIGTERM kill and reap them.
 */
static void spawn_children(long n, const sigset_t *old, int ready_fd)
{
	pid_t *pids = calloc(n + 1, sizeof(*pids));
	sigset_t wait_usr1;
	int sig;
	long i;

	if (!pids)
		die("out of memory");
	sigemptyset(&wait_usr1);
	sigaddset(&wait_usr1, SIGUSR1);
	for (i = 0; i < n; i++) {
		pids[i] = fork();
		if (pids[i] < 0)
			die("fork %ld: %s", i, strerror(errno));
		if (pids[i] == 0) {
			signal(SIGTERM, SIG_DFL);
			if (!active) {
				sigprocmask(SIG_SETMASK, old, NULL);
				for (;;)
					pause();
			}
			for (;;)
				if (!sigwait(&wait_usr1, &sig))
					active_work();
		}
	}
	if (write(ready_fd, "r", 1) != 1)
		die("spawn: %s", strerror(errno));
	while (!got_term)
		sigsuspend(old);
	for (i = 0; i < n; i++)
		kill(pids[i], SIGKILL);
	while (wait(NULL) > 0)
		;
	free(pids);
}

/*
 * N processes in all: this one, two workers (so that forking runs on both
 * CPUs) and their N - 3 children.  On SIGTERM all are killed and reaped.
 */
static int cmd_spawn(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_term };
	sigset_t block, old;
	pid_t workers[2];
	int ready[2], w;
	long n;
	char c;

	if (argc < 3)
		die("usage: spawn N [active]");
	n = strtol(argv[2], NULL, 10) - 3;
	if (n < 0)
		die("spawn: N must be at least 3");
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGUSR1);	/* only active children take it */
	sigprocmask(SIG_BLOCK, &block, &old);
	/*
	 * gvm compare sends SIGUSR1 to the whole process group: this process
	 * and the workers keep it blocked while they wait (its default
	 * action would end them and orphan the children).
	 */
	sigaddset(&old, SIGUSR1);
	if (argc > 3 && !strcmp(argv[3], "active")) {
		if (setpgid(0, 0))
			die("setpgid: %s", strerror(errno));
		active = active_map(1);
		active->pgid = getpgrp();
		active->procs = n;
	}
	sigaction(SIGTERM, &sa, NULL);
	if (pipe(ready))
		die("pipe: %s", strerror(errno));
	for (w = 0; w < 2; w++) {
		workers[w] = fork();
		if (workers[w] < 0)
			die("fork: %s", strerror(errno));
		if (workers[w] == 0) {
			close(ready[0]);
			spawn_children(n / 2 + (w ? n % 2 : 0), &old, ready[1]);
			_exit(0);
		}
	}
	close(ready[1]);
	for (w = 0; w < 2; w++)
		if (read(ready[0], &c, 1) != 1)
			die("spawn: a worker failed");
	mark_ready();
	while (!got_term)
		sigsuspend(&old);
	for (w = 0; w < 2; w++)
		kill(workers[w], SIGTERM);
	while (wait(NULL) > 0)
		;
	return 0;
}

static int cmd_churn(int argc, char **argv)
{
	double end;
	long forks = 0;

	if (argc < 3)
		die("usage: churn SECS");
	end = now_ms() + atof(argv[2]) * 1e3;
	while (now_ms() < end) {
		pid_t pid = fork();

		if (pid < 0)
			continue;
		if (pid == 0)
			_exit(0);
		waitpid(pid, NULL, 0);
		forks++;
	}
	printf("churn: %ld forks\n", forks);
	return 0;
}

static void *tc_thread(void *arg)
{
	return arg;
}

static int cmd_tchurn(int argc, char **argv)
{
	double end;
	long threads = 0;

	if (argc < 3)
		die("usage: tchurn SECS");
	end = now_ms() + atof(argv[2]) * 1e3;
	while (now_ms() < end) {
		pthread_t t[4];
		int i, made = 0;

		for (i = 0; i < 4; i++)
			if (!pthread_create(&t[i], NULL, tc_thread, NULL))
				made++;
		for (i = 0; i < made; i++)
			pthread_join(t[i], NULL);
		threads += made;
	}
	printf("tchurn: %ld threads\n", threads);
	return 0;
}

static int cmd_reaper(int argc, char **argv)
{
	struct timespec ts;
	long ms;
	pid_t pid;

	if (argc < 3)
		die("usage: reaper MS");
	ms = strtol(argv[2], NULL, 10);
	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		volatile unsigned long x = 0;
		int i;

		do {
			for (i = 0; i < 100000; i++)
				x++;
			clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
		} while (ts.tv_sec * 1000 + ts.tv_nsec / 1000000 < ms);
		_exit(0);
	}
	if (waitpid(pid, NULL, 0) != pid)
		die("waitpid: %s", strerror(errno));
	sleep_forever();
	return 0;
}

/*
 * Dirty MIB MiB of DEV's page cache, then zero the range out: BLKZEROOUT
 * truncates the page cache first, so the dirty pages are never written and
 * count as this process's cancelled_write_bytes (the guest's /init keeps
 * the flusher away from them).
 */
static int cmd_cancelwrite(int argc, char **argv)
{
	static char block[1 << 20];
	uint64_t range[2];
	long mib, i;
	int fd;

	if (argc < 4)
		die("usage: cancelwrite DEV MIB");
	mib = strtol(argv[3], NULL, 10);
	fd = open(argv[2], O_RDWR);
	if (fd < 0)
		die("open %s: %s", argv[2], strerror(errno));
	memset(block, 0x5a, sizeof(block));
	for (i = 0; i < mib; i++)
		if (write(fd, block, sizeof(block)) != sizeof(block))
			die("write %s: %s", argv[2], strerror(errno));
	range[0] = 0;
	range[1] = (uint64_t)mib << 20;
	if (ioctl(fd, BLKZEROOUT, range))
		die("BLKZEROOUT %s: %s", argv[2], strerror(errno));
	sleep_forever();
	return 0;
}

/* Touch MIB MiB and push them out to swap (MADV_PAGEOUT). */
static int cmd_swapper(int argc, char **argv)
{
	size_t len, i;
	char *mem;

	if (argc < 3)
		die("usage: swapper MIB");
	len = strtoul(argv[2], NULL, 10) << 20;
	mem = mmap(NULL, len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	for (i = 0; i < len; i += 4096)
		mem[i] = 1;
	if (madvise(mem, len, MADV_PAGEOUT))
		die("madvise(MADV_PAGEOUT): %s", strerror(errno));
	sleep_forever();
	return 0;
}

/*
 * The command lines gvm execloop takes turns with, as the module prints
 * them: a long one (execloop_long()) and "gvm execloop b".  With ASLR off (ADDR_NO_RANDOMIZE
 * survives exec) both images' argument strings end at the same address,
 * so reading one image's memory at the other's argument addresses (what
 * an exec between reading arg_start/arg_end and reading the memory did
 * to the module) gives neither.
 */
#define EXECLOOP_LONG	300

static void execloop_long(char *out)
{
	strcpy(out, "gvm execloop ");
	memset(out + 13, 'a', EXECLOOP_LONG);
	out[13 + EXECLOOP_LONG] = '\0';
}

static int cmd_execloop(int argc, char **argv)
{
	static char arg[EXECLOOP_LONG + 1];
	char *longer[] = { "gvm", "execloop", arg, NULL };
	char *shorter[] = { "gvm", "execloop", "b", NULL };
	const char *ready = getenv("GVM_READY");
	int persona;

	memset(arg, 'a', EXECLOOP_LONG);
	if (argc < 3) {
		persona = personality(0xffffffff);
		if (persona < 0 || personality(persona | ADDR_NO_RANDOMIZE) < 0)
			die("personality: %s", strerror(errno));
		execv("/proc/self/exe", longer);
	} else if (argv[2][0] == 'a') {
		if (ready && access(ready, F_OK))
			mark_ready();
		execv("/proc/self/exe", shorter);
	} else {
		execv("/proc/self/exe", longer);
	}
	die("exec: %s", strerror(errno));
	return 1;
}

/* The CLONE_VM child of gvm retitle share: raw system calls only. */
static int retitle_sharer(void *arg)
{
	syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	for (;;)
		syscall(SYS_pause);
	return 0;
}

/*
 * gvm retitle DONE [share]: the three ways a command line changes after
 * exec, on signals, for the module's kept command lines (cmdline_refresh):
 * in place as setproctitle(3) does (SIGUSR1: argv[1] "retitle" becomes
 * "titled1", then "titled2"... of the same length), moved with
 * prctl(PR_SET_MM) to "gvm moved" on the heap (SIGHUP), and a new image
 * from exec (SIGUSR2: "gvm retitle DONE again").  SIGALRM only makes it run.
 * DONE gets "usr1 N", "moved", "exec" or "alrm N" once it is done.  With
 * share, a child process (not a thread) shares its memory: another
 * process could rewrite its arguments.
 */
static int cmd_retitle(int argc, char **argv)
{
	static const char moved[] = "gvm\0moved";
	static char stack[64 * 1024] __attribute__((aligned(16)));
	char *heap, *args[] = { "gvm", "retitle", argv[2], "again", NULL };
	char done[64];
	sigset_t set;
	int sig, n = 0, alrm = 0;

	if (argc < 3 || strlen(argv[1]) != strlen("titled1"))
		die("usage: retitle DONE [share]");
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGALRM);
	sigprocmask(SIG_BLOCK, &set, NULL);
	if (argc > 3 && !strcmp(argv[3], "again"))
		put_file(argv[2], "exec");
	if (argc > 3 && !strcmp(argv[3], "share") &&
	    clone(retitle_sharer, stack + sizeof(stack), CLONE_VM | SIGCHLD,
		  NULL) < 0)
		die("clone: %s", strerror(errno));
	mark_ready();
	for (;;) {
		if (sigwait(&set, &sig))
			die("sigwait");
		if (sig == SIGALRM) {
			snprintf(done, sizeof(done), "alrm %d", ++alrm);
			put_file(argv[2], done);
		} else if (sig == SIGUSR1) {
			n++;
			snprintf(argv[1], strlen(argv[1]) + 1, "titled%d", n % 10);
			snprintf(done, sizeof(done), "usr1 %d", n);
			put_file(argv[2], done);
		} else if (sig == SIGHUP) {
			heap = malloc(sizeof(moved));
			if (!heap)
				die("out of memory");
			memcpy(heap, moved, sizeof(moved));
			/* The start first: the range must stay ordered. */
			if (prctl(PR_SET_MM, PR_SET_MM_ARG_START,
				  (unsigned long)heap, 0, 0) ||
			    prctl(PR_SET_MM, PR_SET_MM_ARG_END,
				  (unsigned long)heap + sizeof(moved), 0, 0))
				die("PR_SET_MM: %s", strerror(errno));
			put_file(argv[2], "moved");
		} else {
			sigprocmask(SIG_UNBLOCK, &set, NULL);
			execv("/proc/self/exe", args);
			die("exec: %s", strerror(errno));
		}
	}
	return 1;
}

static ssize_t slurp(const char *path, char *buf, size_t size);

/*
 * gvm poke PID TEXT: TEXT over argv[1] of PID, which stays asleep, written
 * by this process through /proc/PID/mem as a debugger would: its arguments
 * start at arg_start (field 48 of /proc/PID/stat), argv[1] after the first
 * NUL of /proc/PID/cmdline.
 */
static int cmd_poke(int argc, char **argv)
{
	char path[64], stat[1024], cmdline[256], *p;
	unsigned long arg_start = 0;
	size_t len;
	int field, fd;

	if (argc < 4)
		die("usage: poke PID TEXT");
	snprintf(path, sizeof(path), "/proc/%s/stat", argv[2]);
	if (slurp(path, stat, sizeof(stat)) <= 0)
		die("read %s", path);
	p = strrchr(stat, ')');
	/* Field 3 starts after ") ". */
	for (field = 3, p = p ? p + 2 : stat; *p && field < 48; p++)
		if (*p == ' ')
			field++;
	if (field != 48 || sscanf(p, "%lu", &arg_start) != 1 || !arg_start)
		die("no arg_start in %s", path);
	snprintf(path, sizeof(path), "/proc/%s/cmdline", argv[2]);
	if (slurp(path, cmdline, sizeof(cmdline)) <= 0)
		die("read %s", path);
	snprintf(path, sizeof(path), "/proc/%s/mem", argv[2]);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		die("open %s: %s", path, strerror(errno));
	len = strlen(argv[3]);
	if (pwrite(fd, argv[3], len, arg_start + strlen(cmdline) + 1) !=
	    (ssize_t)len)
		die("write %s: %s", path, strerror(errno));
	close(fd);
	puts("poked");
	return 0;
}

/*
 * gvm deepcg MOUNT CGPATH LEN CMD...: below the cgroup MOUNT/CGPATH, make
 * nested cgroups (relative names: the file system path outgrows PATH_MAX)
 * until the cgroup path is exactly LEN bytes, move there and exec CMD.
 */
static int cmd_deepcg(int argc, char **argv)
{
	char dir[4096], name[256], pid[32];
	size_t len, want, n;

	if (argc < 6)
		die("usage: deepcg MOUNT CGPATH LEN CMD...");
	snprintf(dir, sizeof(dir), "%s%s", argv[2], argv[3]);
	if (chdir(dir))
		die("chdir %s: %s", dir, strerror(errno));
	len = strlen(argv[3]);
	want = strtoul(argv[4], NULL, 10);
	while (len < want) {
		/* "/" and a name; never leave room for only the "/". */
		n = want - len - 1;
		if (n > 200)
			n = want - len - 1 - 200 == 1 ? 199 : 200;
		memset(name, 'd', n);
		name[n] = '\0';
		if (mkdir(name, 0755) && errno != EEXIST)
			die("mkdir: %s", strerror(errno));
		if (chdir(name))
			die("chdir: %s", strerror(errno));
		len += n + 1;
	}
	snprintf(pid, sizeof(pid), "%d\n", getpid());
	write_file("cgroup.procs", pid);
	execvp(argv[5], argv + 5);
	die("exec %s: %s", argv[5], strerror(errno));
	return 1;
}

/* --- readers and probes ------------------------------------------------ */

/* One entry of gvm execloop is whole: one of its command lines, or none. */
static int execloop_ok(const char *line, size_t n)
{
	char want[EXECLOOP_LONG + 64];
	static const char *const fixed[] = {
		"\"cmdline\":\"gvm execloop b\",",
		"\"cmdline\":\"gvm execloop\",", "\"cmdline\":\"\",",
	};
	unsigned int i;

	for (i = 0; i < sizeof(fixed) / sizeof(*fixed); i++)
		if (memmem(line, n, fixed[i], strlen(fixed[i])))
			return 1;
	strcpy(want, "\"cmdline\":\"");
	execloop_long(want + strlen(want));
	strcat(want, "\",");
	return memmem(line, n, want, strlen(want)) != NULL;
}

struct entry_stats {
	long reaped;	/* entries of reaped tasks */
	long badexec;	/* execloop entries with a command line of neither */
	long execseen;	/* execloop entries */
	char example[512];
};

/*
 * Entries of a valid document: none of a reaped task (state X, or ppid 0
 * in a container: kthreadd and init have no container) and, for the pids
 * in @watch (gvm execloop), whole command lines.  One entry per line.
 */
static void check_entries(const char *buf, size_t len, const long *watch,
			  int nwatch, struct entry_stats *st)
{
	const char *p = buf, *end = buf + len, *line, *eol;
	size_t n;
	long pid;
	int i;

	while ((p = memmem(p, end - p, "\n{\"pid\":", 8))) {
		line = p + 1;
		eol = memchr(line, '\n', end - line);
		if (!eol)
			eol = end;
		n = eol - line;
		pid = strtol(line + 7, NULL, 10);
		if (memmem(line, n, "\"state\":\"X\"", 11) ||
		    (memmem(line, n, "\"ppid\":0,", 9) &&
		     !memmem(line, n, "\"container_id\":null", 19))) {
			st->reaped++;
			snprintf(st->example, sizeof(st->example), "%.*s",
				 (int)n, line);
		}
		for (i = 0; i < nwatch; i++) {
			if (watch[i] != pid)
				continue;
			st->execseen++;
			if (!execloop_ok(line, n)) {
				st->badexec++;
				snprintf(st->example, sizeof(st->example),
					 "%.*s", (int)n, line);
			}
		}
		p = eol;
	}
}

/* Reads each reader makes at least (it says so in OUTDIR/min-reads-ID). */
#define READER_MIN 5

static void reader(int id, double secs, const char *file, const char *dir,
		   const long *watch, int nwatch)
{
	long reads = 0, valid = 0, invalid = 0, errors = 0, saved = 0;
	struct entry_stats st = { 0 };
	double end = now_ms() + secs * 1e3, worst = 0;
	const char *stop = "time";
	size_t cap = 0;
	char *buf = NULL, path[4096];
	FILE *out;

	while (now_ms() < end) {
		double t0 = now_ms();
		ssize_t len;
		int fd;

		fd = open(file, O_RDONLY);
		if (fd < 0) {
			if (errno == ENOENT) {
				stop = "gone";
				break;
			}
			errors++;
			continue;
		}
		len = read_all(fd, &buf, &cap);
		close(fd);
		if (len < 0) {
			/* EIO: the module went away during this read. */
			errors++;
			continue;
		}
		reads++;
		if (reads == READER_MIN) {
			snprintf(path, sizeof(path), "%s/min-reads-%d", dir, id);
			close(open(path, O_WRONLY | O_CREAT, 0644));
		}
		if (now_ms() - t0 > worst)
			worst = now_ms() - t0;
		if (json_check(buf, len) == 0) {
			valid++;
			check_entries(buf, len, watch, nwatch, &st);
		} else {
			invalid++;
			snprintf(path, sizeof(path), "%s/invalid-%d-%ld.json",
				 dir, id, invalid);
			out = fopen(path, "w");
			if (out) {
				fwrite(buf, 1, len, out);
				fclose(out);
			}
		}
		/* Reader 0 keeps a few documents for the schema check. */
		if (id == 0 && (reads == 1 || reads % 25 == 0) && saved < 3) {
			snprintf(path, sizeof(path), "%s/sample-%ld.json", dir,
				 saved++);
			out = fopen(path, "w");
			if (out) {
				fwrite(buf, 1, len, out);
				fclose(out);
			}
		}
	}
	snprintf(path, sizeof(path), "%s/reader-%d.txt", dir, id);
	out = fopen(path, "w");
	if (!out)
		die("cannot write %s", path);
	fprintf(out, "reads=%ld valid=%ld invalid=%ld errors=%ld stop=%s worst_ms=%.1f reaped=%ld badexec=%ld execseen=%ld\n",
		reads, valid, invalid, errors, stop, worst, st.reaped,
		st.badexec, st.execseen);
	fclose(out);
	if (st.example[0]) {
		snprintf(path, sizeof(path), "%s/bad-entry-%d.txt", dir, id);
		out = fopen(path, "w");
		if (out) {
			fprintf(out, "%s\n", st.example);
			fclose(out);
		}
	}
	exit(0);
}

static int cmd_readers(int argc, char **argv)
{
	const char *env = getenv("GVM_EXECLOOP");
	long watch[16];
	int n, i, nwatch = 0;
	char *end;

	if (argc < 6)
		die("usage: readers N SECS FILE OUTDIR");
	while (env && *env && nwatch < 16) {
		watch[nwatch++] = strtol(env, &end, 10);
		env = *end ? end + 1 : end;
	}
	n = atoi(argv[2]);
	for (i = 0; i < n; i++) {
		pid_t pid = fork();

		if (pid < 0)
			die("fork: %s", strerror(errno));
		if (pid == 0)
			reader(i, atof(argv[3]), argv[4], argv[5], watch,
			       nwatch);
	}
	while (wait(NULL) > 0)
		;
	return 0;
}

static int cmd_readn(int argc, char **argv)
{
	size_t cap = 0, bytes;
	char *buf = NULL, small[64];
	long n, i;

	if (argc < 4)
		die("usage: readn FILE N [BYTES]");
	n = strtol(argv[3], NULL, 10);
	bytes = argc > 4 ? strtoul(argv[4], NULL, 10) : 0;
	if (bytes > sizeof(small))
		bytes = sizeof(small);
	for (i = 0; i < n; i++) {
		int fd = open(argv[2], O_RDONLY);

		if (fd < 0)
			die("open %s: %s", argv[2], strerror(errno));
		if (bytes ? read(fd, small, bytes) < 0
			  : read_all(fd, &buf, &cap) < 0)
			die("read %s: %s", argv[2], strerror(errno));
		close(fd);
	}
	return 0;
}

static int cmd_holdopen(int argc, char **argv)
{
	char buf[4096];
	ssize_t n;
	int fd;

	if (argc < 5)
		die("usage: holdopen FILE READY GO");
	fd = open(argv[2], O_RDONLY);
	if (fd < 0)
		die("open %s: %s", argv[2], strerror(errno));
	n = read(fd, buf, 100);
	printf("holdopen: first read %zd\n", n);
	fflush(stdout);
	close(open(argv[3], O_WRONLY | O_CREAT, 0644));
	while (access(argv[4], F_OK))
		usleep(20000);
	n = read(fd, buf, sizeof(buf));
	printf("holdopen: second read %zd errno %s\n", n,
	       n < 0 ? strerrorname_np(errno) : "none");
	printf("holdopen: close %d\n", close(fd));
	return 0;
}

static int cmd_json(int argc, char **argv)
{
	size_t cap = 0;
	char *buf = NULL;
	ssize_t len;
	int fd;

	if (argc < 3)
		die("usage: json FILE");
	fd = open(argv[2], O_RDONLY);
	if (fd < 0)
		die("open %s: %s", argv[2], strerror(errno));
	len = read_all(fd, &buf, &cap);
	close(fd);
	if (len < 0 || json_check(buf, len))
		return 1;
	return 0;
}

struct uffd_wait {
	int uffd;
	char *buf;
	size_t len;
	const char *ready;
	const char *go;
};

/*
 * The read's copy to user memory faults into the userfaultfd: the read is
 * in progress (the seq_file built, its ->read_iter not returned) for as
 * long as the fault is not served.  Unregistering the range wakes it.
 */
static void *uffd_monitor(void *arg)
{
	struct uffd_wait *w = arg;
	struct pollfd pfd = { .fd = w->uffd, .events = POLLIN };
	struct uffdio_range range = { (uintptr_t)w->buf, w->len };
	struct uffd_msg msg;

	if (poll(&pfd, 1, -1) != 1 ||
	    read(w->uffd, &msg, sizeof(msg)) != sizeof(msg) ||
	    msg.event != UFFD_EVENT_PAGEFAULT)
		die("uffdread: no page fault");
	close(open(w->ready, O_WRONLY | O_CREAT, 0644));
	while (access(w->go, F_OK))
		usleep(20000);
	if (ioctl(w->uffd, UFFDIO_UNREGISTER, &range))
		die("UFFDIO_UNREGISTER: %s", strerror(errno));
	return NULL;
}

static int cmd_uffdread(int argc, char **argv)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	struct uffd_wait w = { .len = 64 * 1024 };
	char small[64];
	pthread_t t;
	ssize_t n;
	int fd;

	if (argc < 5)
		die("usage: uffdread FILE READY GO");
	w.ready = argv[3];
	w.go = argv[4];
	w.buf = mmap(NULL, w.len, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	w.uffd = syscall(SYS_userfaultfd, O_CLOEXEC);
	if (w.buf == MAP_FAILED || w.uffd < 0 ||
	    ioctl(w.uffd, UFFDIO_API, &api))
		die("userfaultfd: %s", strerror(errno));
	reg.range.start = (uintptr_t)w.buf;
	reg.range.len = w.len;
	if (ioctl(w.uffd, UFFDIO_REGISTER, &reg))
		die("UFFDIO_REGISTER: %s", strerror(errno));
	fd = open(argv[2], O_RDONLY);
	if (fd < 0)
		die("open %s: %s", argv[2], strerror(errno));
	if (pthread_create(&t, NULL, uffd_monitor, &w))
		die("pthread_create");
	n = read(fd, w.buf, w.len);
	printf("uffdread: read %zd %s\n", n,
	       n < 0 ? strerrorname_np(errno) : "ok");
	n = read(fd, small, sizeof(small));
	printf("uffdread: second read %zd errno %s\n", n,
	       n < 0 ? strerrorname_np(errno) : "none");
	return 0;
}

static int cmd_tryread(int argc, char **argv)
{
	size_t cap = 0;
	char *buf = NULL;
	ssize_t n;
	int fd;

	if (argc < 3)
		die("usage: tryread FILE");
	fd = open(argv[2], O_RDONLY);
	if (fd < 0) {
		printf("errno %s\n", strerrorname_np(errno));
		return 0;
	}
	n = read_all(fd, &buf, &cap);
	close(fd);
	if (n < 0)
		printf("errno %s\n", strerrorname_np(-n));
	else
		printf("ok %zd\n", n);
	return 0;
}

static int cmd_within(int argc, char **argv)
{
	struct pollfd pfd = { .events = POLLIN };
	int status;
	pid_t pid;

	if (argc < 4)
		die("usage: within SECS CMD...");
	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		/* Not the caller's stdout: a pipe would wait for CMD too. */
		dup2(open("/dev/null", O_WRONLY), STDOUT_FILENO);
		execvp(argv[3], argv + 3);
		_exit(127);
	}
	pfd.fd = syscall(SYS_pidfd_open, pid, 0);
	if (pfd.fd < 0)
		die("pidfd_open: %s", strerror(errno));
	if (poll(&pfd, 1, (int)(atof(argv[2]) * 1000)) == 0) {
		printf("within: timeout\n");
		return 2;
	}
	if (waitpid(pid, &status, 0) != pid)
		die("waitpid: %s", strerror(errno));
	status = WIFEXITED(status) ? WEXITSTATUS(status)
				   : 128 + WTERMSIG(status);
	printf("within: done rc=%d\n", status);
	return status ? 1 : 0;
}

static void copy_into(FILE *out, const char *path)
{
	char buf[8192];
	size_t n;
	FILE *in = fopen(path, "r");

	if (!in)
		return;
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		fwrite(buf, 1, n, out);
	fclose(in);
}

static void dump_system(const char *dir)
{
	static const char *const files[] = { "uptime", "meminfo", "stat" };
	char path[4096], line[512];
	unsigned int i;
	FILE *out, *in;

	for (i = 0; i < sizeof(files) / sizeof(*files); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		out = fopen(path, "w");
		if (!out)
			die("cannot write %s", path);
		snprintf(path, sizeof(path), "/proc/%s", files[i]);
		if (i == 2) {
			/* Only the first line: the total of every CPU. */
			in = fopen(path, "r");
			if (in && fgets(line, sizeof(line), in))
				fputs(line, out);
			if (in)
				fclose(in);
		} else {
			copy_into(out, path);
		}
		fclose(out);
	}
	snprintf(path, sizeof(path), "%s/date", dir);
	out = fopen(path, "w");
	if (!out)
		die("cannot write %s", path);
	fprintf(out, "%ld\n", (long)time(NULL));
	fclose(out);
}

static int cmd_dump(int argc, char **argv)
{
	static const char *const parts[] = { "cgroup", "stat", "statm", "io" };
	static const char *const heads[] = { "", "-- stat\n", "\n-- statm\n",
					     "-- io\n" };
	char path[4096];
	struct dirent *e;
	unsigned int i;
	FILE *out;
	DIR *d;

	if (argc < 3)
		die("usage: dump DIR [sysfirst]");
	if (argc > 3)
		dump_system(argv[2]);
	snprintf(path, sizeof(path), "%s/procs.txt", argv[2]);
	out = fopen(path, "w");
	d = opendir("/proc");
	if (!out || !d)
		die("dump: %s", strerror(errno));
	while ((e = readdir(d))) {
		if (atoi(e->d_name) <= 0)
			continue;
		fprintf(out, "== %s\n", e->d_name);
		for (i = 0; i < 4; i++) {
			fputs(heads[i], out);
			snprintf(path, sizeof(path), "/proc/%s/%s", e->d_name,
				 parts[i]);
			copy_into(out, path);
		}
	}
	closedir(d);
	fclose(out);
	if (argc <= 3)
		dump_system(argv[2]);
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void print_times(const char *what, double *t, int n, long bytes,
			long procs)
{
	double sum = 0;
	int i;

	for (i = 0; i < n; i++)
		sum += t[i];
	qsort(t, n, sizeof(*t), cmp_double);
	printf("%s n=%d min_ms=%.2f median_ms=%.2f mean_ms=%.2f max_ms=%.2f bytes=%ld procs=%ld\n",
	       what, n, t[0], t[n / 2], sum / n, t[n - 1], bytes, procs);
}

static long count_procs(const char *buf, size_t len)
{
	long n = 0;
	const char *p = buf, *end = buf + len;

	while ((p = memmem(p, end - p, "{\"pid\":", 7))) {
		n++;
		p += 7;
	}
	return n;
}

/* One whole read of @file, checked; returns ms, document in *buf. */
static double time_read(const char *file, char **buf, size_t *cap,
			ssize_t *len)
{
	double t0 = now_ms();
	int fd = open(file, O_RDONLY);

	if (fd < 0)
		die("open %s: %s", file, strerror(errno));
	*len = read_all(fd, buf, cap);
	close(fd);
	t0 = now_ms() - t0;
	if (*len < 0 || json_check(*buf, *len))
		die("invalid document from %s", file);
	return t0;
}

static int cmd_timeread(int argc, char **argv)
{
	size_t cap = 0;
	char *buf = NULL;
	ssize_t len = 0;
	double t[101];
	int n, i;

	if (argc < 4)
		die("usage: timeread FILE N");
	n = atoi(argv[3]);
	if (n < 1 || n > 101)
		die("N out of range");
	for (i = 0; i < n; i++)
		t[i] = time_read(argv[2], &buf, &cap, &len);
	print_times("module", t, n, len, count_procs(buf, len));
	return 0;
}

/* --- userspace scan of /proc: what a collector without the module does -- */

struct out {
	char *buf;
	size_t len, cap;
};

static void out_add(struct out *o, const char *s, size_t n)
{
	if (o->len + n > o->cap) {
		o->cap = (o->len + n) * 2;
		o->buf = realloc(o->buf, o->cap);
		if (!o->buf)
			die("out of memory");
	}
	memcpy(o->buf + o->len, s, n);
	o->len += n;
}

static void out_fmt(struct out *o, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	out_add(o, tmp, n);
}

static int utf8_len(const unsigned char *s, size_t left)
{
	struct jp p = { s, left, 0 };

	if (s[0] < 0x80)
		return 1;
	return jp_utf8(&p) ? 0 : (int)p.i;
}

static void out_str(struct out *o, const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	out_add(o, "\"", 1);
	while (i < len) {
		unsigned char c = s[i];
		int n = c >= 0x80 ? utf8_len(s + i, len - i) : 1;

		if (c == '"' || c == '\\') {
			out_add(o, "\\", 1);
			out_add(o, (const char *)&c, 1);
		} else if (c == '\n') {
			out_add(o, "\\n", 2);
		} else if (c == '\t') {
			out_add(o, "\\t", 2);
		} else if (c < 0x20 || c == 0x7f) {
			out_fmt(o, "\\u%04x", c);
		} else if (n == 0) {
			out_add(o, "\xef\xbf\xbd", 3);
			n = 1;
		} else {
			out_add(o, str + i, n);
		}
		i += n ? n : 1;
	}
	out_add(o, "\"", 1);
}

static ssize_t slurp(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n >= 0)
		buf[n] = '\0';
	return n;
}

/*
 * The container ID in a cgroup path, under the parents each runtime
 * creates (the module's rules, written again here as patterns: '*' is one
 * path component of any name, '#' the 64-hex ID, '?' a pod UID; a pattern
 * matches the start of the path, up to a '/' or the end).
 */
static const char *const id_patterns[] = {
	"/docker/#", "/default/#", "/k8s.io/#",
	"/system.slice/docker-#.scope", "/system.slice/nerdctl-#.scope",
	"/machine.slice/libpod-#.scope",
	"/kubepods/pod?/#", "/kubepods/besteffort/pod?/#",
	"/kubepods/burstable/pod?/#", "/kubepods/pod?/crio-#",
	"/kubepods/besteffort/pod?/crio-#", "/kubepods/burstable/pod?/crio-#",
	"/kubepods.slice/kubepods-pod?.slice/cri-containerd-#.scope",
	"/kubepods.slice/kubepods-pod?.slice/crio-#.scope",
	"/kubepods.slice/kubepods-pod?.slice/docker-#.scope",
	"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod?.slice/cri-containerd-#.scope",
	"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod?.slice/crio-#.scope",
	"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod?.slice/docker-#.scope",
	"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod?.slice/cri-containerd-#.scope",
	"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod?.slice/crio-#.scope",
	"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod?.slice/docker-#.scope",
};

static const char *match_id(const char *pat, const char *s, const char *end)
{
	const char *id = NULL;
	size_t k;

	for (; *pat; pat++) {
		if (*pat == '#') {
			for (k = 0; k < ID_LEN; k++)
				if (s + k >= end ||
				    !memchr("0123456789abcdef", s[k], 16))
					return NULL;
			id = s;
			s += ID_LEN;
		} else if (*pat == '?') {
			for (k = 0; s < end && k < 64 &&
			     memchr("0123456789abcdef-_", *s, 18); k++)
				s++;
			if (!k)
				return NULL;
		} else if (s >= end || *s++ != *pat) {
			return NULL;
		}
	}
	return s == end || *s == '/' ? id : NULL;
}

static const char *find_id(const char *path, size_t len)
{
	const char *id;
	size_t k;

	for (k = 0; k < sizeof(id_patterns) / sizeof(*id_patterns); k++) {
		id = match_id(id_patterns[k], path, path + len);
		if (id)
			return id;
	}
	return NULL;
}

/* One scan: returns the number of processes listed. */
static long scan_once(struct out *o, int all)
{
	static char stat[4096], cg[8192], cmd[CMDLINE_MAX + 1], io[1024];
	long page_kib = sysconf(_SC_PAGESIZE) / 1024, tick = sysconf(_SC_CLK_TCK);
	DIR *d = opendir("/proc");
	struct dirent *e;
	long listed = 0;
	char *line;

	if (!d)
		die("opendir /proc");
	unsigned long long cpu[8] = { 0 }, mem_total = 0, mem_free = 0;
	unsigned long long mem_avail = 0, cached = 0, swap_total = 0;
	unsigned long long swap_free = 0, tick_ns = 1000000000ULL / tick;

	o->len = 0;
	if (slurp("/proc/stat", stat, sizeof(stat)) > 0)
		sscanf(stat, "cpu %llu %llu %llu %llu %llu %llu %llu %llu",
		       &cpu[0], &cpu[1], &cpu[2], &cpu[3], &cpu[4], &cpu[5],
		       &cpu[6], &cpu[7]);
	if (slurp("/proc/meminfo", cg, sizeof(cg)) > 0) {
		for (line = strtok(cg, "\n"); line; line = strtok(NULL, "\n")) {
			sscanf(line, "MemTotal: %llu", &mem_total);
			sscanf(line, "MemFree: %llu", &mem_free);
			sscanf(line, "MemAvailable: %llu", &mem_avail);
			sscanf(line, "Cached: %llu", &cached);
			sscanf(line, "SwapTotal: %llu", &swap_total);
			sscanf(line, "SwapFree: %llu", &swap_free);
		}
	}
	out_fmt(o, "{\"version\":2,\"source\":\"userspace\",\"system\":{\"cpu_count\":%ld,\"cpu_time_ns\":{\"user\":%llu,\"nice\":%llu,\"system\":%llu,\"idle\":%llu,\"iowait\":%llu,\"irq\":%llu,\"softirq\":%llu,\"steal\":%llu}",
		sysconf(_SC_NPROCESSORS_ONLN), cpu[0] * tick_ns,
		cpu[1] * tick_ns, cpu[2] * tick_ns, cpu[3] * tick_ns,
		cpu[4] * tick_ns, cpu[5] * tick_ns, cpu[6] * tick_ns,
		cpu[7] * tick_ns);
	out_fmt(o, ",\"mem_total_kib\":%llu,\"mem_free_kib\":%llu,\"mem_available_kib\":%llu,\"mem_used_kib\":%llu,\"mem_cached_kib\":%llu,\"swap_total_kib\":%llu,\"swap_free_kib\":%llu},\"processes\":[",
		mem_total, mem_free, mem_avail, mem_total - mem_avail, cached,
		swap_total, swap_free);
	while ((e = readdir(d))) {
		unsigned long long ut, st, cut, cst, start, vsz, rchar = 0;
		unsigned long long wchar = 0, syscr = 0, syscw = 0, rb = 0;
		unsigned long long wb = 0, cwb = 0;
		char path[64], state, *comm, *rp, *cgpath = NULL;
		const char *id = NULL;
		long rss, ppid;
		ssize_t n, cglen = 0;
		int pid = atoi(e->d_name);

		if (pid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/cgroup", pid);
		n = slurp(path, cg, sizeof(cg));
		if (n < 0)
			continue;
		for (line = strtok(cg, "\n"); line; line = strtok(NULL, "\n")) {
			char *p = strchr(line, ':');

			p = p ? strchr(p + 1, ':') : NULL;
			if (!p)
				continue;
			if (!cgpath || !strncmp(line, "0::", 3)) {
				cgpath = p + 1;
				cglen = strlen(cgpath);
			}
			id = find_id(p + 1, strlen(p + 1));
			if (id) {
				cgpath = p + 1;
				cglen = strlen(cgpath);
				break;
			}
		}
		if (!id && !all)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/stat", pid);
		if (slurp(path, stat, sizeof(stat)) <= 0)
			continue;
		comm = strchr(stat, '(');
		rp = strrchr(stat, ')');
		if (!comm || !rp)
			continue;
		*rp = '\0';
		comm++;
		if (sscanf(rp + 2,
			   "%c %ld %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu %*d %*d %*d %*d %llu %llu %ld",
			   &state, &ppid, &ut, &st, &cut, &cst, &start, &vsz,
			   &rss) != 9)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
		n = slurp(path, cmd, sizeof(cmd));
		if (n > 0 && cmd[n - 1] == '\0')
			n--;
		for (ssize_t k = 0; k < n; k++)
			if (!cmd[k])
				cmd[k] = ' ';
		snprintf(path, sizeof(path), "/proc/%d/io", pid);
		if (slurp(path, io, sizeof(io)) > 0)
			sscanf(io, "rchar: %llu wchar: %llu syscr: %llu syscw: %llu read_bytes: %llu write_bytes: %llu cancelled_write_bytes: %llu",
			       &rchar, &wchar, &syscr, &syscw, &rb, &wb, &cwb);
		out_fmt(o, "%s\n{\"pid\":%d,\"ppid\":%ld,\"comm\":",
			listed ? "," : "", pid, ppid);
		out_str(o, comm, strlen(comm));
		out_add(o, ",\"cmdline\":", 11);
		out_str(o, cmd, n > 0 ? n : 0);
		/* Reading /proc/<pid>/cmdline waits for a busy mmap_lock. */
		out_add(o, ",\"cmdline_unavailable\":false", 28);
		out_add(o, ",\"container_id\":", 16);
		if (id) {
			out_add(o, "\"", 1);
			out_add(o, id, ID_LEN);
			out_add(o, "\"", 1);
		} else {
			out_add(o, "null", 4);
		}
		out_add(o, ",\"cgroup\":", 10);
		out_str(o, cgpath ? cgpath : "", cgpath ? cglen : 0);
		out_fmt(o, ",\"state\":\"%c\",\"rss_kib\":%ld,\"vsz_kib\":%llu,\"mem_pct_x100\":%llu,\"cpu_time_ns\":%llu,\"children_cpu_time_ns\":%llu,\"start_time_ns\":%llu",
			state, rss * page_kib, vsz / 1024,
			mem_total ? rss * page_kib * 10000ULL / mem_total : 0,
			(ut + st) * tick_ns, (cut + cst) * tick_ns,
			start * tick_ns);
		out_fmt(o, ",\"read_bytes\":%llu,\"write_bytes\":%llu,\"cancelled_write_bytes\":%llu,\"rchar\":%llu,\"wchar\":%llu,\"syscr\":%llu,\"syscw\":%llu}",
			rb, wb, cwb, rchar, wchar, syscr, syscw);
		listed++;
	}
	closedir(d);
	out_fmt(o, "\n]}\n");
	return listed;
}

static int cmd_scan(int argc, char **argv)
{
	struct out o = { 0 };
	double t[101];
	long listed = 0;
	int n, i, all;

	if (argc < 3)
		die("usage: scan N [all]");
	n = atoi(argv[2]);
	all = argc > 3 && !strcmp(argv[3], "all");
	if (n < 1 || n > 101)
		die("N out of range");
	for (i = 0; i < n; i++) {
		double t0 = now_ms();

		listed = scan_once(&o, all);
		t[i] = now_ms() - t0;
		if (json_check(o.buf, o.len))
			die("scan produced invalid JSON");
	}
	print_times("userspace", t, n, o.len, listed);
	return 0;
}

/* The part of an entry that says what it is: "comm" up to "state". */
/*
 * What identifies a process's entry: its name and command line (from
 * ,"comm": to ,"cmdline_unavailable":) and its container (from
 * ,"container_id": to the flag after the cgroup or ,"state":), leaving out
 * the flags only the module has (cmdline_cached, cmdline_truncated,
 * cgroup_truncated).
 */
struct ident {
	long pid;
	const char *s;
	size_t len;
	const char *cg;
	size_t cg_len;
};

static int cmp_ident(const void *a, const void *b)
{
	const struct ident *x = a, *y = b;

	return x->pid < y->pid ? -1 : x->pid > y->pid;
}

static size_t idents(const char *buf, size_t len, struct ident **out)
{
	const char *p = buf, *end = buf + len, *line, *eol, *c, *u, *k, *st;
	size_t n = 0, cap = 1024;

	*out = malloc(cap * sizeof(**out));
	while (*out && (p = memmem(p, end - p, "\n{\"pid\":", 8))) {
		line = p + 1;
		eol = memchr(line, '\n', end - line);
		if (!eol)
			eol = end;
		c = memmem(line, eol - line, ",\"comm\":", 8);
		u = memmem(line, eol - line, ",\"cmdline_unavailable\":", 23);
		k = memmem(line, eol - line, ",\"container_id\":", 16);
		st = memmem(line, eol - line, ",\"cgroup_truncated\":", 20);
		if (!st)
			st = memmem(line, eol - line, ",\"state\":", 9);
		if (c && u && k && st && c < u && u < k && k < st) {
			if (n == cap) {
				cap *= 2;
				*out = realloc(*out, cap * sizeof(**out));
				if (!*out)
					break;
			}
			(*out)[n].pid = strtol(line + 7, NULL, 10);
			(*out)[n].s = c;
			(*out)[n].len = u - c;
			(*out)[n].cg = k;
			(*out)[n].cg_len = st - k;
			n++;
		}
		p = eol;
	}
	if (!*out)
		die("out of memory");
	qsort(*out, n, sizeof(**out), cmp_ident);
	return n;
}

/*
 * The module's document and the scan's list the same processes with the
 * same name, command line, container ID and cgroup path.
 */
static void print_agreement(const char *mod, size_t mod_len, const char *scan,
			    size_t scan_len)
{
	struct ident *a, *b;
	size_t na = idents(mod, mod_len, &a), nb = idents(scan, scan_len, &b);
	size_t i = 0, j = 0, only_a = 0, only_b = 0, differ = 0;

	while (i < na || j < nb) {
		if (j == nb || (i < na && a[i].pid < b[j].pid)) {
			only_a++;
			i++;
		} else if (i == na || b[j].pid < a[i].pid) {
			only_b++;
			j++;
		} else {
			if (a[i].len != b[j].len ||
			    memcmp(a[i].s, b[j].s, a[i].len) ||
			    a[i].cg_len != b[j].cg_len ||
			    memcmp(a[i].cg, b[j].cg, a[i].cg_len))
				differ++;
			i++;
			j++;
		}
	}
	printf("agreement module=%zu scan=%zu only_module=%zu only_scan=%zu differ=%zu\n",
	       na, nb, only_a, only_b, differ);
	free(a);
	free(b);
}

/*
 * ROUNDS rounds of three whole reads of FILE and one userspace scan, so that
 * both see the same host load over time; both timings are printed, and
 * whether the last read and scan list the same processes the same way.
 */
/*
 * With gvm spawn N active: wake every spawned process and wait until each
 * has done its bit of work (untimed), so that each read or scan finds
 * processes that ran since the last one.
 */
static void active_wake(void)
{
	long want;
	int tries;

	if (!active)
		return;
	want = __atomic_load_n(&active->worked, __ATOMIC_SEQ_CST) + active->procs;
	if (kill(-active->pgid, SIGUSR1))
		die("kill -USR1 %ld: %s", active->pgid, strerror(errno));
	for (tries = 0; __atomic_load_n(&active->worked, __ATOMIC_SEQ_CST) < want;
	     tries++) {
		if (tries > 600000)
			die("active processes did not all run");
		usleep(100);
	}
}

static int cmd_compare(int argc, char **argv)
{
	double tm[3 * 33], ts[33];
	struct out o = { 0 };
	size_t cap = 0;
	char *buf = NULL;
	ssize_t len = 0;
	long listed = 0;
	int rounds, r, k;

	if (argc < 4)
		die("usage: compare FILE ROUNDS");
	rounds = atoi(argv[3]);
	if (rounds < 1 || rounds > 33)
		die("ROUNDS out of range");
	if (getenv("GVM_ACTIVE"))
		active = active_map(0);
	for (r = 0; r < rounds; r++) {
		double t0;

		for (k = 0; k < 3; k++) {
			active_wake();
			tm[3 * r + k] = time_read(argv[2], &buf, &cap, &len);
		}
		active_wake();
		t0 = now_ms();
		listed = scan_once(&o, 0);
		ts[r] = now_ms() - t0;
		if (json_check(o.buf, o.len))
			die("scan produced invalid JSON");
	}
	print_times("module", tm, 3 * rounds, len, count_procs(buf, len));
	print_times("userspace", ts, rounds, o.len, listed);
	print_agreement(buf, len, o.buf, o.len);
	return 0;
}

/* --- an mmap_lock held by a page fault that never ends ------------------ */

#define STALL_BLOCKS	1024		/* a 4 MiB nbd device */
#define STALL_OFF	(2L << 20)	/* the page whose read is held */
/* Exit status: this kernel refuses the read that would hold the lock. */
#define MMSTALL_UNSUPPORTED	3

struct stall {
	int sock;		/* this end of the nbd connection */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int armed;		/* hold the next read of the stall page */
	int held;		/* it is held */
	int release;		/* answer it */
};

static int read_full(int fd, void *buf, size_t len)
{
	char *p = buf;
	ssize_t n;

	while (len) {
		n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= n;
	}
	return 0;
}

static int write_full(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;

	while (len) {
		n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= n;
	}
	return 0;
}

/* An nbd server of zeros that holds a read of the stall page when armed. */
static void *stall_server(void *arg)
{
	static char data[64 * 1024];
	struct nbd_reply rep = { .magic = htonl(NBD_REPLY_MAGIC) };
	struct stall *s = arg;
	struct nbd_request req;
	uint64_t from;
	uint32_t type, len, n;

	while (!read_full(s->sock, &req, sizeof(req))) {
		type = ntohl(req.type) & 0xffff;
		len = ntohl(req.len);
		from = be64toh(req.from);
		if (ntohl(req.magic) != NBD_REQUEST_MAGIC ||
		    type == NBD_CMD_DISC)
			break;
		for (; type == NBD_CMD_WRITE && len; len -= n) {
			n = len < sizeof(data) ? len : sizeof(data);
			if (read_full(s->sock, data, n))
				return NULL;
		}
		pthread_mutex_lock(&s->lock);
		if (type == NBD_CMD_READ && s->armed &&
		    from < STALL_OFF + 4096 && from + len > STALL_OFF) {
			s->held = 1;
			pthread_cond_broadcast(&s->cond);
			while (!s->release)
				pthread_cond_wait(&s->cond, &s->lock);
			s->armed = 0;
		}
		pthread_mutex_unlock(&s->lock);
		memcpy(rep.handle, req.handle, sizeof(rep.handle));
		if (write_full(s->sock, &rep, sizeof(rep)))
			return NULL;
		for (; type == NBD_CMD_READ && len; len -= n) {
			n = len < sizeof(data) ? len : sizeof(data);
			if (write_full(s->sock, data, n))
				return NULL;
		}
	}
	return NULL;
}

struct victim {
	int go;		/* read: the device is up */
	int report;	/* write: the mapping, the thread's tid, 'm' */
	int mmap_go;	/* read (the thread): call mmap() now */
};

/* Queues a writer on mmap_lock: mmap() takes it for writing. */
static void *victim_thread(void *arg)
{
	struct victim *v = arg;
	pid_t tid = syscall(SYS_gettid);
	void *p;
	char c;

	if (write_full(v->report, &tid, sizeof(tid)) ||
	    read_full(v->mmap_go, &c, 1))
		_exit(1);
	p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	c = p == MAP_FAILED ? 'f' : 'm';
	if (write_full(v->report, &c, 1))
		_exit(1);
	for (;;)
		pause();
	return NULL;
}

/* Maps a page of the device it never touches itself, then sleeps. */
static void stall_victim(const char *dev, struct victim *v)
{
	pthread_t t;
	void *map;
	char c;
	int fd;

	if (read_full(v->go, &c, 1))
		_exit(1);
	fd = open(dev, O_RDONLY);
	if (fd < 0)
		die("open %s: %s", dev, strerror(errno));
	map = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, STALL_OFF);
	if (map == MAP_FAILED)
		die("mmap %s: %s", dev, strerror(errno));
	madvise(map, 4096, MADV_RANDOM);
	if (write_full(v->report, &map, sizeof(map)) ||
	    pthread_create(&t, NULL, victim_thread, v))
		_exit(1);
	for (;;)
		pause();
}

/* State letter of a thread and the syscall it is in (-1: none). */
static char thread_state(pid_t pid, pid_t tid, long *nr)
{
	char path[64], buf[1024], *rp;

	*nr = -1;
	snprintf(path, sizeof(path), "/proc/%d/task/%d/syscall", pid, tid);
	if (slurp(path, buf, sizeof(buf)) > 0 && buf[0] != 'r')
		*nr = strtol(buf, NULL, 10);
	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", pid, tid);
	if (slurp(path, buf, sizeof(buf)) <= 0)
		return '?';
	rp = strrchr(buf, ')');
	return rp && rp[1] == ' ' ? rp[2] : '?';
}

/*
 * A child (the victim) maps a page of an nbd device that this process
 * serves.  Another child reads that page through /proc/<victim>/mem:
 * access_remote_vm() takes the victim's mmap_lock for reading and faults
 * the page in without being able to drop the lock, and this server holds
 * the read.  Then a thread of the victim calls mmap(), which queues for
 * the lock in write mode: from then on every reader of the victim's
 * mmap_lock waits (/proc/<victim>/cmdline, ps, and access_process_vm()),
 * as behind a fault on a stuck FUSE or NFS file.
 */
static int cmd_mmstall(int argc, char **argv)
{
	struct stall s = {
		.lock = PTHREAD_MUTEX_INITIALIZER,
		.cond = PTHREAD_COND_INITIALIZER,
	};
	int sv[2], go[2], report[2], mmap_go[2], nbd, sig;
	char path[128], text[64], *name, c;
	pid_t doit, victim, reader, tid;
	struct victim v;
	pthread_t server;
	sigset_t set;
	double end;
	void *map;
	int tries;
	long nr;

	if (argc < 4)
		die("usage: mmstall DEV RELEASED");
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, NULL);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) || pipe(go) ||
	    pipe(report) || pipe(mmap_go))
		die("mmstall: %s", strerror(errno));
	nbd = open(argv[2], O_RDWR);
	if (nbd < 0 || ioctl(nbd, NBD_SET_BLKSIZE, 4096UL) ||
	    ioctl(nbd, NBD_SET_SIZE_BLOCKS, (unsigned long)STALL_BLOCKS) ||
	    ioctl(nbd, NBD_SET_SOCK, sv[0]))
		die("nbd %s: %s", argv[2], strerror(errno));
	doit = fork();
	if (doit == 0) {
		ioctl(nbd, NBD_DO_IT);
		_exit(0);
	}
	close(sv[0]);
	v = (struct victim){ go[0], report[1], mmap_go[0] };
	victim = fork();
	if (victim == 0) {
		sigprocmask(SIG_UNBLOCK, &set, NULL);
		stall_victim(argv[2], &v);
	}
	if (doit < 0 || victim < 0)
		die("fork: %s", strerror(errno));
	s.sock = sv[1];
	if (pthread_create(&server, NULL, stall_server, &s))
		die("pthread_create");

	/* nbd publishes the server's pid once the device is up. */
	name = strrchr(argv[2], '/');
	snprintf(path, sizeof(path), "/sys/block/%s/pid",
		 name ? name + 1 : argv[2]);
	for (end = now_ms() + 30e3; access(path, F_OK); usleep(10000))
		if (now_ms() > end)
			die("mmstall: %s did not connect", argv[2]);
	if (write_full(go[1], "g", 1) ||
	    read_full(report[0], &map, sizeof(map)) ||
	    read_full(report[0], &tid, sizeof(tid)))
		die("mmstall: the victim failed");

	/*
	 * The stall page must be read from the server, not found in the page
	 * cache: newer kernels read more of a new block device (partition
	 * scans, large folios). Drop its clean pages first.
	 */
	if (ioctl(nbd, BLKFLSBUF, 0))
		die("mmstall: BLKFLSBUF: %s", strerror(errno));
	pthread_mutex_lock(&s.lock);
	s.armed = 1;
	pthread_mutex_unlock(&s.lock);
	snprintf(path, sizeof(path), "/proc/%d/mem", victim);
	reader = fork();
	if (reader == 0) {
		int fd;

		/*
		 * Kernels built with PROC_MEM_FORCE_PTRACE (Debian's from 7.x)
		 * let /proc/PID/mem force access only to a tracer: attach
		 * (without stopping the victim) to read as on the others.
		 */
		ptrace(PTRACE_SEIZE, victim, NULL, NULL);
		fd = open(path, O_RDONLY);
		/*
		 * Some boots fail this read with EIO before any request
		 * reaches the server (seen on 5.10 and 7.2): try again.
		 */
		for (tries = 0; fd >= 0 && tries < 20; tries++) {
			if (pread(fd, &c, 1, (off_t)(uintptr_t)map) == 1)
				_exit(0);
			fprintf(stderr, "gvm: mmstall: reading %s: %s\n", path,
				strerror(errno));
			usleep(200000);
		}
		_exit(1);
	}
	pthread_mutex_lock(&s.lock);
	for (end = now_ms() + 30e3; !s.held; ) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&s.cond, &s.lock, &ts);
		if (!s.held && waitpid(reader, NULL, WNOHANG) == reader) {
			fprintf(stderr, "gvm: mmstall: unsupported: /proc/PID/mem"
				" read of the victim's nbd page failed before any"
				" request reached the server\n");
			exit(MMSTALL_UNSUPPORTED);
		}
		if (!s.held && now_ms() > end)
			die("mmstall: the read of the victim's page never reached the server");
	}
	pthread_mutex_unlock(&s.lock);

	/* The writer is queued once the thread sleeps (D) inside mmap(). */
	if (write_full(mmap_go[1], "t", 1))
		die("mmstall: the victim failed");
	for (end = now_ms() + 30e3;
	     thread_state(victim, tid, &nr) != 'D' || nr != SYS_mmap;
	     usleep(10000))
		if (now_ms() > end)
			die("mmstall: the writer did not queue");
	snprintf(text, sizeof(text), "%d %d %d\n", victim, reader, tid);
	mark_ready_text(text);

	do {
		sigwait(&set, &sig);
	} while (sig != SIGUSR1);
	pthread_mutex_lock(&s.lock);
	s.release = 1;
	pthread_cond_broadcast(&s.cond);
	pthread_mutex_unlock(&s.lock);
	if (waitpid(reader, NULL, 0) != reader || read_full(report[0], &c, 1))
		die("mmstall: no release");
	close(open(argv[3], O_WRONLY | O_CREAT, 0644));

	do {
		sigwait(&set, &sig);
	} while (sig != SIGTERM);
	kill(victim, SIGKILL);
	waitpid(victim, NULL, 0);
	ioctl(nbd, NBD_DISCONNECT);
	shutdown(sv[1], SHUT_RDWR);
	pthread_join(server, NULL);
	kill(doit, SIGKILL);
	waitpid(doit, NULL, 0);
	return 0;
}

/* --- NUMA hinting faults, memory charges, 100,000 processes ------------- */

/* mm->numa_scan_seq of this process (/proc/self/sched), or -1. */
static long numa_scan_seq(void)
{
	char buf[16384], *p;
	ssize_t n = slurp("/proc/self/sched", buf, sizeof(buf) - 1);

	if (n <= 0)
		return -1;
	buf[n] = '\0';
	p = strstr(buf, "numa_scan_seq");
	if (!p || !(p = strchr(p, ':')))
		return -1;
	return strtol(p + 1, NULL, 10);
}

/*
 * The thread that runs while NUMA balancing scans this process's memory:
 * its ticks drive the scans (task_numa_work()), each of which makes the
 * pages of the whole (small) address space fault on their next access.
 * Only this thread's own stack and the loop's code are touched meanwhile:
 * the main thread, blocked in pthread_join(), never touches its argument
 * page again.
 */
static void *numahint_thread(void *arg)
{
	volatile unsigned long x = 0;
	char text[64];
	double end = now_ms() + 120000;
	long seq = -1, cpus = sysconf(_SC_NPROCESSORS_ONLN);
	cpu_set_t one, all;
	char ready[256], *p;
	int i, cpu;

	/*
	 * The environment's strings share the argument page: read
	 * GVM_READY now, not after the scans (getenv() would touch it).
	 */
	snprintf(ready, sizeof(ready), "%s", getenv("GVM_READY") ?: "/dev/null");

	/*
	 * A page just faulted in sits in its CPU's LRU batch, which holds a
	 * reference, and NUMA balancing skips pages with a reference more
	 * (a shared copy-on-write page, for all it knows): fill each CPU's
	 * batch with new pages so that the argument page leaves it.
	 */
	sched_getaffinity(0, sizeof(all), &all);
	for (cpu = 0; cpu < cpus; cpu++) {
		CPU_ZERO(&one);
		CPU_SET(cpu, &one);
		if (sched_setaffinity(0, sizeof(one), &one))
			continue;
		p = mmap(NULL, 64 << 12, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			die("mmap: %s", strerror(errno));
		for (i = 0; i < 64; i++)
			p[i << 12] = 1;
		munmap(p, 64 << 12);
	}
	sched_setaffinity(0, sizeof(all), &all);

	while (now_ms() < end) {
		for (i = 0; i < 1000000; i++)
			x += i;
		seq = numa_scan_seq();
		if (seq >= 4)
			break;
	}
	snprintf(text, sizeof(text), "scans %ld\n", seq);
	put_file(ready, text);
	for (;;)
		pause();
	return NULL;
}

static int cmd_numahint(void)
{
	pthread_t t;

	if (pthread_create(&t, NULL, numahint_thread, NULL))
		die("pthread_create");
	pthread_join(t, NULL);
	return 0;
}

/* The path of @file in this process's cgroup (v2) into @path. */
static int cg_path(const char *file, char *path, size_t size)
{
	char buf[4200], *nl;
	ssize_t n = slurp("/proc/self/cgroup", buf, sizeof(buf) - 1);
	char *p;

	if (n <= 0)
		return -1;
	buf[n] = '\0';
	p = strstr(buf, "0::");
	if (!p)
		return -1;
	nl = strchr(p, '\n');
	if (nl)
		*nl = '\0';
	snprintf(path, size, "/sys/fs/cgroup%s/%s", p + 3, file);
	return 0;
}

/* memory.current (or another number file) of this cgroup, or -1. */
static long long cg_memory(const char *file)
{
	char path[4300], buf[64];
	ssize_t n;

	if (cg_path(file, path, sizeof(path)))
		return -1;
	n = slurp(path, buf, sizeof(buf) - 1);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	return strtoll(buf, NULL, 10);
}

/* Open @path @n times (descriptors in @fds), or die. */
static void open_many(const char *path, int *fds, long n)
{
	long i;

	for (i = 0; i < n; i++) {
		fds[i] = open(path, O_RDONLY);
		if (fds[i] < 0)
			die("open %s (%ld): %s", path, i, strerror(errno));
	}
}

static void close_many(int *fds, long n)
{
	long i;

	for (i = 0; i < n; i++)
		close(fds[i]);
}

/*
 * gvm memprobe FILE N REF: run on one CPU (one per-CPU charge stock) in
 * its own memory cgroup.  What one read of FILE charges: held mid-document
 * (one byte read), then once read out; then N opens of FILE and N of REF,
 * never read.  Figures in bytes.
 */
static int cmd_memprobe(int argc, char **argv)
{
	long long c0, c1, c2, c3, c4, c5, c6;
	struct rlimit rl;
	size_t cap = 0;
	char *buf = NULL, byte;
	cpu_set_t one;
	ssize_t len;
	int fd, *fds;
	long n;

	if (argc < 5)
		die("usage: memprobe FILE N REF");
	n = strtol(argv[3], NULL, 10);
	CPU_ZERO(&one);
	CPU_SET(0, &one);
	sched_setaffinity(0, sizeof(one), &one);
	rl.rlim_cur = rl.rlim_max = n + 64;
	if (setrlimit(RLIMIT_NOFILE, &rl))
		die("setrlimit: %s", strerror(errno));
	fds = calloc(n, sizeof(*fds));
	if (!fds)
		die("out of memory");

	c0 = cg_memory("memory.current");
	fd = open(argv[2], O_RDONLY);
	if (fd < 0 || read(fd, &byte, 1) != 1)
		die("read %s: %s", argv[2], strerror(errno));
	c1 = cg_memory("memory.current");
	len = read_all(fd, &buf, &cap);
	close(fd);
	c2 = cg_memory("memory.current");

	open_many(argv[4], fds, n);
	c3 = cg_memory("memory.current");
	close_many(fds, n);
	c4 = cg_memory("memory.current");
	open_many(argv[2], fds, n);
	c5 = cg_memory("memory.current");
	close_many(fds, n);
	c6 = cg_memory("memory.current");
	printf("doc_bytes=%zd read_mid=%lld read_after=%lld opens=%ld opens_ref=%lld opens_file=%lld\n",
	       len + 1, c1 - c0, c2 - c0, n, c3 - c2, c5 - c4);
	(void)c6;
	return 0;
}

/*
 * gvm spawnvm N: N processes that share this one's memory (CLONE_VM, and
 * its files, fs and signal handlers: a process costs the kernel little
 * more than its task and kernel stack), each asleep in pause(); on SIGTERM
 * all are killed and reaped.  GVM_READY once all exist.
 */
#define SPAWNVM_STACK	512

static int spawnvm_child(void *arg)
{
	for (;;)
		syscall(SYS_pause);
	return 0;
}

static int cmd_spawnvm(int argc, char **argv)
{
	const int flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND |
			  SIGCHLD;
	sigset_t block, old;
	char *stacks;
	pid_t *pids;
	long n, i;
	int sig;

	if (argc < 3)
		die("usage: spawnvm N");
	n = strtol(argv[2], NULL, 10);
	pids = calloc(n, sizeof(*pids));
	stacks = mmap(NULL, (size_t)n * SPAWNVM_STACK, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!pids || stacks == MAP_FAILED)
		die("out of memory");
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, &old);
	for (i = 0; i < n; i++) {
		pids[i] = clone(spawnvm_child,
				stacks + (i + 1) * (size_t)SPAWNVM_STACK - 64,
				flags, NULL);
		if (pids[i] < 0)
			die("clone %ld: %s", i, strerror(errno));
	}
	mark_ready();
	sigwait(&block, &sig);
	for (i = 0; i < n; i++)
		kill(pids[i], SIGKILL);
	while (waitpid(-1, NULL, __WALL) > 0)
		;
	return 0;
}

/*
 * gvm bigread FILE OUT: one whole read of FILE into OUT, from its own
 * memory cgroup: "ms=T bytes=B mid=M peak=P" (charges in bytes; mid is
 * after the first byte, when the document is built and held; peak is
 * memory.peak, -1 where the kernel has none).
 */
static int cmd_bigread(int argc, char **argv)
{
	long long c0, mid, peak;
	size_t cap = 0;
	char *buf = NULL;
	double t0, ms;
	ssize_t len;
	int fd, out;

	if (argc < 4)
		die("usage: bigread FILE OUT");
	c0 = cg_memory("memory.current");
	t0 = now_ms();
	fd = open(argv[2], O_RDONLY);
	cap = 1;
	buf = malloc(cap);
	if (fd < 0 || !buf || read(fd, buf, 1) != 1)
		die("read %s: %s", argv[2], strerror(errno));
	mid = cg_memory("memory.current");
	/* What the charge held mid-read is made of: OUT.memstat. */
	{
		char path[4300], stat[8192], name[4300];
		ssize_t n = -1;

		if (!cg_path("memory.stat", path, sizeof(path)))
			n = slurp(path, stat, sizeof(stat) - 1);
		if (n > 0) {
			stat[n] = '\0';
			snprintf(name, sizeof(name), "%s.memstat", argv[3]);
			put_file(name, stat);
		}
	}
	len = read_all(fd, &buf, &cap);
	ms = now_ms() - t0;
	close(fd);
	peak = cg_memory("memory.peak");
	if (len < 0)
		die("read %s: %s", argv[2], strerror(-len));
	out = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC, 0644);
	/* The first byte was read alone: it is the document's "{". */
	if (out < 0 || write_full(out, "{", 1) || write_full(out, buf, len))
		die("write %s: %s", argv[3], strerror(errno));
	close(out);
	printf("ms=%.1f bytes=%zd mid=%lld peak=%lld\n", ms, len + 1, mid - c0,
	       peak < 0 ? -1 : peak - c0);
	return 0;
}

int main(int argc, char **argv)
{
	const char *cmd;

	if (getenv("GVM_HOSTILE"))
		return cmd_hostile();
	if (getenv("GVM_LONG"))
		return cmd_longargs();
	if (argc < 2)
		die("usage: gvm COMMAND [ARGS]");
	cmd = argv[1];
	signal(SIGPIPE, SIG_IGN);
	if (!strcmp(cmd, "incg"))
		return cmd_incg(argc, argv);
	if (!strcmp(cmd, "burn"))
		return cmd_burn();
	if (!strcmp(cmd, "hold"))
		return cmd_hold(argc, argv);
	if (!strcmp(cmd, "sleep"))
		sleep_forever();
	if (!strcmp(cmd, "hostile"))
		return cmd_hostile();
	if (!strcmp(cmd, "longargs"))
		return cmd_longargs();
	if (!strcmp(cmd, "zleader"))
		return cmd_zleader();
	if (!strcmp(cmd, "zombie"))
		return cmd_zombie();
	if (!strcmp(cmd, "spawn"))
		return cmd_spawn(argc, argv);
	if (!strcmp(cmd, "reaper"))
		return cmd_reaper(argc, argv);
	if (!strcmp(cmd, "cancelwrite"))
		return cmd_cancelwrite(argc, argv);
	if (!strcmp(cmd, "swapper"))
		return cmd_swapper(argc, argv);
	if (!strcmp(cmd, "execloop"))
		return cmd_execloop(argc, argv);
	if (!strcmp(cmd, "retitle"))
		return cmd_retitle(argc, argv);
	if (!strcmp(cmd, "poke"))
		return cmd_poke(argc, argv);
	if (!strcmp(cmd, "deepcg"))
		return cmd_deepcg(argc, argv);
	if (!strcmp(cmd, "mmstall"))
		return cmd_mmstall(argc, argv);
	if (!strcmp(cmd, "churn"))
		return cmd_churn(argc, argv);
	if (!strcmp(cmd, "tchurn"))
		return cmd_tchurn(argc, argv);
	if (!strcmp(cmd, "readers"))
		return cmd_readers(argc, argv);
	if (!strcmp(cmd, "readn"))
		return cmd_readn(argc, argv);
	if (!strcmp(cmd, "holdopen"))
		return cmd_holdopen(argc, argv);
	if (!strcmp(cmd, "uffdread"))
		return cmd_uffdread(argc, argv);
	if (!strcmp(cmd, "tryread"))
		return cmd_tryread(argc, argv);
	if (!strcmp(cmd, "within"))
		return cmd_within(argc, argv);
	if (!strcmp(cmd, "json"))
		return cmd_json(argc, argv);
	if (!strcmp(cmd, "dump"))
		return cmd_dump(argc, argv);
	if (!strcmp(cmd, "timeread"))
		return cmd_timeread(argc, argv);
	if (!strcmp(cmd, "scan"))
		return cmd_scan(argc, argv);
	if (!strcmp(cmd, "compare"))
		return cmd_compare(argc, argv);
	if (!strcmp(cmd, "numahint"))
		return cmd_numahint();
	if (!strcmp(cmd, "memprobe"))
		return cmd_memprobe(argc, argv);
	if (!strcmp(cmd, "spawnvm"))
		return cmd_spawnvm(argc, argv);
	if (!strcmp(cmd, "bigread"))
		return cmd_bigread(argc, argv);
	die("unknown command %s", cmd);
	return 1;
}
