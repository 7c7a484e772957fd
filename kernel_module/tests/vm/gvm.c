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
 *   gvm churn SECS             fork children that exit at once, for SECS
 *   gvm tchurn SECS            create threads that exit at once, for SECS
 *   gvm readers N SECS FILE OUTDIR
 *                              N processes read FILE in a loop, check every
 *                              document is valid JSON, stop after SECS or
 *                              when FILE disappears; summary in OUTDIR
 *   gvm readn FILE N [BYTES]   open/read/close N times (only BYTES bytes)
 *   gvm holdopen FILE READY GO open FILE, read a little, create READY, wait
 *                              for GO to exist, read again, report errno
 *   gvm json FILE              exit 0 if FILE is one valid JSON document
 *   gvm dump DIR [sysfirst]    ground truth: cgroup, stat, statm and io of
 *                              every process (DIR/procs.txt), and uptime,
 *                              date, meminfo, /proc/stat's cpu line, taken
 *                              after the processes (or before: sysfirst)
 *   gvm timeread FILE N        time N whole reads of FILE (ms)
 *   gvm scan N [all]           time N userspace scans of /proc gathering
 *                              the module's fields, as JSON (ms)
 *   gvm compare FILE ROUNDS    ROUNDS x (3 timed reads of FILE, 1 scan)
 *
 * With GVM_READY=PATH in the environment, long-running workloads create PATH
 * once they are set up.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
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

/* Create $GVM_READY, holding @text if not NULL. */
static void mark_ready_text(const char *text)
{
	const char *path = getenv("GVM_READY");
	char tmp[4096];
	int fd;

	if (!path)
		return;
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return;
	if (text && write(fd, text, strlen(text)) < 0)
		die("write %s: %s", tmp, strerror(errno));
	close(fd);
	rename(tmp, path);
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
 * Fork @n sleeping children, write one byte to @ready_fd, and on SIGTERM
 * kill and reap them.
 */
static void spawn_children(long n, const sigset_t *old, int ready_fd)
{
	pid_t *pids = calloc(n + 1, sizeof(*pids));
	long i;

	if (!pids)
		die("out of memory");
	for (i = 0; i < n; i++) {
		pids[i] = fork();
		if (pids[i] < 0)
			die("fork %ld: %s", i, strerror(errno));
		if (pids[i] == 0) {
			signal(SIGTERM, SIG_DFL);
			sigprocmask(SIG_SETMASK, old, NULL);
			for (;;)
				pause();
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
		die("usage: spawn N");
	n = strtol(argv[2], NULL, 10) - 3;
	if (n < 0)
		die("spawn: N must be at least 3");
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, &old);
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

/* --- readers and probes ------------------------------------------------ */

static void reader(int id, double secs, const char *file, const char *dir)
{
	long reads = 0, valid = 0, invalid = 0, errors = 0, saved = 0;
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
		if (now_ms() - t0 > worst)
			worst = now_ms() - t0;
		if (json_check(buf, len) == 0) {
			valid++;
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
	fprintf(out, "reads=%ld valid=%ld invalid=%ld errors=%ld stop=%s worst_ms=%.1f\n",
		reads, valid, invalid, errors, stop, worst);
	fclose(out);
	exit(0);
}

static int cmd_readers(int argc, char **argv)
{
	int n, i;

	if (argc < 6)
		die("usage: readers N SECS FILE OUTDIR");
	n = atoi(argv[2]);
	for (i = 0; i < n; i++) {
		pid_t pid = fork();

		if (pid < 0)
			die("fork: %s", strerror(errno));
		if (pid == 0)
			reader(i, atof(argv[3]), argv[4], argv[5]);
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

static const char *find_id(const char *path, size_t len)
{
	static const char *const prefixes[] = {
		"docker-", "cri-containerd-", "libpod-", "crio-",
	};
	const char *comp = path, *end = path + len;

	while (comp < end) {
		const char *slash = memchr(comp, '/', end - comp);
		const char *cend = slash ? slash : end;
		size_t clen = cend - comp, k, j;

		for (k = 0; k <= sizeof(prefixes) / sizeof(*prefixes); k++) {
			size_t plen = k ? strlen(prefixes[k - 1]) : 0;
			size_t want = k ? plen + ID_LEN + 6 : ID_LEN;

			if (clen != want || (k && (memcmp(comp,
				prefixes[k - 1], plen) ||
				memcmp(cend - 6, ".scope", 6))))
				continue;
			for (j = 0; j < ID_LEN; j++)
				if (!strchr("0123456789abcdef",
					    comp[plen + j]) || !comp[plen + j])
					break;
			if (j == ID_LEN)
				return comp + plen;
		}
		comp = cend + 1;
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
	out_fmt(o, "{\"version\":1,\"source\":\"userspace\",\"system\":{\"cpu_count\":%ld,\"cpu_time_ns\":{\"user\":%llu,\"nice\":%llu,\"system\":%llu,\"idle\":%llu,\"iowait\":%llu,\"irq\":%llu,\"softirq\":%llu,\"steal\":%llu}",
		sysconf(_SC_NPROCESSORS_ONLN), cpu[0] * tick_ns,
		cpu[1] * tick_ns, cpu[2] * tick_ns, cpu[3] * tick_ns,
		cpu[4] * tick_ns, cpu[5] * tick_ns, cpu[6] * tick_ns,
		cpu[7] * tick_ns);
	out_fmt(o, ",\"mem_total_kib\":%llu,\"mem_free_kib\":%llu,\"mem_available_kib\":%llu,\"mem_used_kib\":%llu,\"mem_cached_kib\":%llu,\"swap_total_kib\":%llu,\"swap_free_kib\":%llu},\"processes\":[",
		mem_total, mem_free, mem_avail, mem_total - mem_avail, cached,
		swap_total, swap_free);
	while ((e = readdir(d))) {
		unsigned long long ut, st, start, vsz, rchar = 0, wchar = 0;
		unsigned long long syscr = 0, syscw = 0, rb = 0, wb = 0;
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
			   "%c %ld %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d %llu %llu %ld",
			   &state, &ppid, &ut, &st, &start, &vsz, &rss) != 7)
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
			sscanf(io, "rchar: %llu wchar: %llu syscr: %llu syscw: %llu read_bytes: %llu write_bytes: %llu",
			       &rchar, &wchar, &syscr, &syscw, &rb, &wb);
		out_fmt(o, "%s\n{\"pid\":%d,\"ppid\":%ld,\"comm\":",
			listed ? "," : "", pid, ppid);
		out_str(o, comm, strlen(comm));
		out_add(o, ",\"cmdline\":", 11);
		out_str(o, cmd, n > 0 ? n : 0);
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
		out_fmt(o, ",\"state\":\"%c\",\"rss_kib\":%ld,\"vsz_kib\":%llu,\"mem_pct_x100\":%llu,\"cpu_time_ns\":%llu,\"start_time_ns\":%llu",
			state, rss * page_kib, vsz / 1024,
			mem_total ? rss * page_kib * 10000ULL / mem_total : 0,
			(ut + st) * tick_ns, start * tick_ns);
		out_fmt(o, ",\"read_bytes\":%llu,\"write_bytes\":%llu,\"rchar\":%llu,\"wchar\":%llu,\"syscr\":%llu,\"syscw\":%llu}",
			rb, wb, rchar, wchar, syscr, syscw);
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

/*
 * ROUNDS rounds of three whole reads of FILE and one userspace scan, so that
 * both see the same host load over time; both timings are printed.
 */
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
	for (r = 0; r < rounds; r++) {
		double t0;

		for (k = 0; k < 3; k++)
			tm[3 * r + k] = time_read(argv[2], &buf, &cap, &len);
		t0 = now_ms();
		listed = scan_once(&o, 0);
		ts[r] = now_ms() - t0;
		if (json_check(o.buf, o.len))
			die("scan produced invalid JSON");
	}
	print_times("module", tm, 3 * rounds, len, count_procs(buf, len));
	print_times("userspace", ts, rounds, o.len, listed);
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
	die("unknown command %s", cmd);
	return 1;
}
