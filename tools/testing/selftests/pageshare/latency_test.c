// SPDX-License-Identifier: GPL-2.0
/*
 * Nothing one VM's owner does, and not the audit, makes another VM's
 * faults wait for long. A third VM's first-touch faults are timed alone,
 * then while another process loops PAGESHARE_SET_POLICY (NEW_GROUP, which
 * any VM owner may call), runs the audit over a 64 MiB VM every 20 ms and
 * tears 64 MiB VMs down. The latencies (median, p99, max) go to the TAP diagnostics.
 *
 * Under emulation a thread can lose its vCPU for a scheduler tick or more,
 * so the bound is relative: the worst fault must stay well below what one
 * audit or one teardown takes, which a fault that waited for either would
 * have to exceed.
 */

#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "pageshare_util.h"

#define MIB		(1024UL * 1024)
#define BIG		(64 * MIB)	/* the audited VM and the torn-down ones */
#define X_SIZE		(64 * MIB)
#define SAMPLES		4096

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

struct load {
	atomic_int stop;
	atomic_long policies, audits, teardowns;
	long errors;
	double audit_us, teardown_us;	/* the longest of each */
};

/*
 * Touches new pages of @m from @first, at most @max, until @l (if any)
 * has run two more audits and one more teardown; sorted latencies in
 * @lat. Returns how many.
 */
static size_t first_touches(unsigned char *m, size_t first, size_t max,
			    double *lat, struct load *l)
{
	long a0 = l ? atomic_load(&l->audits) : 0;
	long t0 = l ? atomic_load(&l->teardowns) : 0;
	size_t i;
	double t;

	for (i = 0; i < max; i++) {
		if (l && i >= SAMPLES && atomic_load(&l->audits) >= a0 + 2 &&
		    atomic_load(&l->teardowns) >= t0 + 1)
			break;
		t = now_us();
		m[(first + i) * PS_PAGE] = 1;
		lat[i] = now_us() - t;
	}
	qsort(lat, i, sizeof(*lat), cmp_double);
	return i;
}

static void *policy_loop(void *arg)
{
	struct load *l = arg;
	int fd = ps_open_alone();
	uint64_t group;

	while (fd >= 0 && !atomic_load(&l->stop)) {
		if (ps_set_policy(fd, 0, PAGESHARE_POLICY_NEW_GROUP, &group))
			l->errors++;
		l->policies++;
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

static void *audit_loop(void *arg)
{
	struct load *l = arg;
	int fd = ps_open_alone(), ret;
	unsigned char *m;
	double t;
	size_t i;

	m = fd < 0 ? MAP_FAILED : ps_map(fd, BIG, 0);
	if (m == MAP_FAILED) {
		l->errors++;
		return NULL;
	}
	for (i = 0; i < BIG / PS_PAGE; i++)
		m[i * PS_PAGE] = i;
	while (!atomic_load(&l->stop)) {
		t = now_us();
		ret = ps_audit(fd);
		t = now_us() - t;
		if (ret)
			l->errors++;
		if (t > l->audit_us)
			l->audit_us = t;
		l->audits++;
		/* An operator's audit loop, not one that starves teardown. */
		usleep(20000);
	}
	munmap(m, BIG);
	close(fd);
	return NULL;
}

static void *teardown_loop(void *arg)
{
	struct load *l = arg;
	unsigned char *m;
	double t;
	size_t i;
	int fd;

	while (!atomic_load(&l->stop)) {
		fd = ps_open_alone();
		m = fd < 0 ? MAP_FAILED : ps_map(fd, BIG, 0);
		if (m == MAP_FAILED) {
			l->errors++;
			break;
		}
		for (i = 0; i < BIG / PS_PAGE && !atomic_load(&l->stop); i++)
			m[i * PS_PAGE] = i;
		munmap(m, BIG);
		t = now_us();
		close(fd);	/* the last reference: the VM goes now */
		t = now_us() - t;
		if (t > l->teardown_us)
			l->teardown_us = t;
		l->teardowns++;
	}
	return NULL;
}

FIXTURE(lat) {
	int unused;
};

FIXTURE_SETUP(lat)
{
}

FIXTURE_TEARDOWN(lat)
{
}

/*
 * The loads run in a process of their own: the teardowns' munmap() takes
 * the mmap_lock of their process for writing, which is not pageshare's to
 * measure.
 */
static pid_t start_loads(struct load *l)
{
	pthread_t t[3];
	pid_t pid = fork();

	if (pid)
		return pid;
	/* A parent the harness killed takes its loads with it. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (pthread_create(&t[0], NULL, policy_loop, l) ||
	    pthread_create(&t[1], NULL, audit_loop, l) ||
	    pthread_create(&t[2], NULL, teardown_loop, l))
		_exit(1);
	pthread_join(t[0], NULL);
	pthread_join(t[1], NULL);
	pthread_join(t[2], NULL);
	_exit(0);
}

TEST_F_TIMEOUT(lat, first_touch_faults_do_not_wait, 600)
{
	static double alone[SAMPLES], loaded[X_SIZE / PS_PAGE];
	struct load *l;
	unsigned char *m;
	double bound;
	int fd, status;
	size_t n;
	pid_t pid;

	REQUIRE_DEVICE();
	l = mmap(NULL, sizeof(*l), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, l);
	memset(l, 0, sizeof(*l));
	fd = ps_open_alone();
	ASSERT_LE(0, fd);
	m = ps_map(fd, X_SIZE, 0);
	ASSERT_NE(MAP_FAILED, m);

	first_touches(m, 0, SAMPLES, alone, NULL);
	pid = start_loads(l);
	ASSERT_LT(0, pid);
	/* Until each load has run at least once. */
	while (!atomic_load(&l->audits) || !atomic_load(&l->teardowns))
		usleep(10000);
	n = first_touches(m, SAMPLES, X_SIZE / PS_PAGE - SAMPLES, loaded, l);
	atomic_store(&l->stop, 1);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_EQ(0, status);

	TH_LOG("alone:  median %.0f us, p99 %.0f us, max %.0f us",
	       alone[SAMPLES / 2], alone[SAMPLES * 99 / 100], alone[SAMPLES - 1]);
	TH_LOG("loaded: %zu faults, median %.0f us, p99 %.0f us, max %.0f us",
	       n, loaded[n / 2], loaded[n * 99 / 100], loaded[n - 1]);
	TH_LOG("meanwhile %ld SET_POLICY, %ld audits (longest %.0f us), "
	       "%ld teardowns (longest %.0f us)",
	       atomic_load(&l->policies), atomic_load(&l->audits), l->audit_us,
	       atomic_load(&l->teardowns), l->teardown_us);
	EXPECT_EQ(0, l->errors);
	/* A fault that waited for an audit or a teardown took at least that. */
	bound = (l->audit_us < l->teardown_us ? l->audit_us : l->teardown_us) / 2;
	EXPECT_LT(loaded[n - 1], bound)
		TH_LOG("a first-touch fault took %.0f us, half an audit or teardown is %.0f us",
		       loaded[n - 1], bound);
	EXPECT_EQ(0, ps_audit(fd));
	munmap(m, X_SIZE);
	close(fd);
	munmap(l, sizeof(*l));
}

/*
 * A share moves every gfn of the client frame onto the source frame, up to
 * max_sharers of them, holding both frames' page locks. On a kernel
 * without preemption nothing else runs on that CPU until the loop yields,
 * so it must yield as it goes. A thread pinned to the same CPU as the
 * caller times the longest stretch it got no CPU while a share moves
 * 262,144 gfns; a loop that never yields starves it for the whole share.
 */
#define MERGE_GFNS	(256 * 1024)
#define ATP_CHUNK	4096

struct spinner {
	atomic_int stop, measuring;
	double max_gap_us, gap_at_us;	/* the longest gap, and when it began */
	int gaps;			/* gaps over 100 ms */
};

static void *spin(void *arg)
{
	struct spinner *sp = arg;
	double last = now_us(), t;

	while (!atomic_load(&sp->stop)) {
		t = now_us();
		if (atomic_load(&sp->measuring)) {
			if (t - last > sp->max_gap_us) {
				sp->max_gap_us = t - last;
				sp->gap_at_us = last;
			}
			sp->gaps += t - last > 100000;
		}
		last = t;
	}
	return NULL;
}

TEST_F_TIMEOUT(lat, share_merge_yields_its_cpu, 600)
{
	struct pageshare_add_to_physmap *e;
	struct spinner sp = { };
	unsigned char *a, *c;
	uint64_t ha, hc;
	double t0, t_share;
	uint32_t i, j, done;
	cpu_set_t cpu0;
	pthread_t t;
	int fa, fb, fc;

	REQUIRE_DEVICE();
	fa = ps_open();
	fb = ps_open();
	fc = ps_open();
	ASSERT_LE(0, fa);
	ASSERT_LE(0, fb);
	ASSERT_LE(0, fc);
	ASSERT_EQ(0, ps_set_size(fb, (uint64_t)MERGE_GFNS * PS_PAGE));
	a = ps_map(fa, PS_PAGE, 0);
	c = ps_map(fc, PS_PAGE, 0);
	ASSERT_NE(MAP_FAILED, a);
	ASSERT_NE(MAP_FAILED, c);
	memset(a, 0, PS_PAGE);
	memset(c, 0, PS_PAGE);
	ASSERT_EQ(0, ps_nominate(fa, 0, &ha, NULL));

	/* A's page onto every gfn of B: a frame with 262,145 sharers. */
	e = calloc(ATP_CHUNK, sizeof(*e));
	ASSERT_NE(NULL, e);
	for (i = 0; i < MERGE_GFNS; i += ATP_CHUNK) {
		for (j = 0; j < ATP_CHUNK; j++)
			e[j] = (struct pageshare_add_to_physmap) {
				.src_vm = fa, .src_gfn = 0, .src_handle = ha,
				.client_vm = fb, .client_gfn = i + j,
			};
		ASSERT_EQ(0, ps_batch(fa, PAGESHARE_ADD_TO_PHYSMAP_BATCH, e,
				      ATP_CHUNK, &done));
		ASSERT_EQ(ATP_CHUNK, done);
		for (j = 0; j < ATP_CHUNK; j++)
			ASSERT_EQ(0, e[j].result);
	}
	free(e);
	ASSERT_EQ(0, ps_nominate(fc, 0, &hc, NULL));

	CPU_ZERO(&cpu0);
	CPU_SET(0, &cpu0);
	ASSERT_EQ(0, sched_setaffinity(0, sizeof(cpu0), &cpu0));
	ASSERT_EQ(0, pthread_create(&t, NULL, spin, &sp));
	ASSERT_EQ(0, pthread_setaffinity_np(t, sizeof(cpu0), &cpu0));
	usleep(100000);

	/* C's page is the source: every gfn of A's frame moves to it. */
	atomic_store(&sp.measuring, 1);
	t0 = now_us();
	EXPECT_EQ(0, ps_share(fc, 0, hc, fa, 0, ha, 0)) TH_LOG("share: %s", strerror(errno));
	t_share = now_us() - t0;
	/* Let the spinner see the end of the stretch the share took. */
	usleep(10000);
	atomic_store(&sp.measuring, 0);
	atomic_store(&sp.stop, 1);
	pthread_join(t, NULL);

	TH_LOG("the share moved %u gfns in %.0f us; the other thread on its CPU waited at most %.0f us, from %.0f us into the share; %d waits over 100 ms",
	       MERGE_GFNS + 1, t_share, sp.max_gap_us, sp.gap_at_us - t0, sp.gaps);
	/* Too short a share proves nothing either way. */
	ASSERT_LT(100000, t_share);
	/*
	 * Seen: before the fix 8.0 s of a 16.0 s share. With cond_resched()
	 * in the merge loop only, 3.1 s of 22.4 s and 5.1 s of 27.2 s, at the
	 * very start: the walk of the client frame's 262,145 sharers for the
	 * no-intra-VM policy check, which now yields too.
	 */
	EXPECT_LT(sp.max_gap_us, t_share / 10);
	EXPECT_EQ(0, ps_audit(fa));
	close(fa);
	close(fb);
	close(fc);
	munmap(a, PS_PAGE);
	munmap(c, PS_PAGE);
}

TEST_HARNESS_MAIN
