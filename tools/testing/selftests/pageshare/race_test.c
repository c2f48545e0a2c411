// SPDX-License-Identifier: GPL-2.0
/*
 * Races on shared frames: writers (KVM vCPUs, the VMM's own stores) that
 * never pause while other threads nominate, share and unshare the same
 * pages; two agents on the same frames; a VMM killed in the middle of a
 * batch; mappings torn down and made again while sharing; fork of the
 * VMM. Afterwards no write may be lost, no page may hold another's bytes,
 * the audit must be clean and, once the VMs are gone, every frame gone.
 */

#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <time.h>

#include "kselftest_harness.h"
#include "pageshare_util.h"

#define MIB	(1024UL * 1024)
#define NP	16		/* pages raced on: gfns PS_DATA_GFN.. */

/* The host's own fill pattern: every u32 of a page is tag + gfn. */
static void host_fill(unsigned char *page, uint64_t gfn, uint32_t tag)
{
	uint32_t *w = (uint32_t *)page;
	size_t i;

	for (i = 0; i < PS_PAGE / 4; i++)
		w[i] = tag * 0x10001u + (uint32_t)gfn;
}

static bool host_filled(const unsigned char *page, uint64_t gfn, uint32_t tag)
{
	const uint32_t *w = (const uint32_t *)page;
	size_t i;

	for (i = 0; i < PS_PAGE / 4; i++)
		if (w[i] != tag * 0x10001u + (uint32_t)gfn)
			return false;
	return true;
}

/*
 * One agent: nominate both VMs' pages with hashes and share every pair
 * whose hashes agree, with the byte compare, in both directions; unshare
 * a few. Failures from racing writers (stale handles, differing bytes,
 * busy pages) are expected; anything else is an error.
 */
struct agent {
	int fd[2];
	atomic_int *stop;
	int rounds, shared, errors;
	unsigned int seed;
};

static bool benign(int err)
{
	return err == 0 || err == ESTALE || err == EIDRM || err == EILSEQ ||
	       err == EBUSY || err == ENODATA;
}

static void *agent(void *arg)
{
	struct agent *a = arg;
	struct pageshare_nominate n[2][NP];
	struct pageshare_share s[NP];
	struct pageshare_unshare u;
	uint32_t done;
	int v, i, k;

	while (!atomic_load(a->stop)) {
		a->rounds++;
		memset(n, 0, sizeof(n));
		for (v = 0; v < 2; v++) {
			for (i = 0; i < NP; i++) {
				n[v][i].vm = a->fd[v];
				n[v][i].gfn = PS_DATA_GFN + i;
				n[v][i].flags = PAGESHARE_NOMINATE_HASH;
			}
			if (ps_batch(a->fd[v], PAGESHARE_NOMINATE_BATCH, n[v], NP, &done))
				a->errors++;
		}
		memset(s, 0, sizeof(s));
		for (i = 0, k = 0; i < NP; i++) {
			int src = rand_r(&a->seed) & 1;

			if (n[0][i].result || n[1][i].result || n[0][i].hash != n[1][i].hash) {
				a->errors += !benign(-n[0][i].result) + !benign(-n[1][i].result);
				continue;
			}
			s[k++] = (struct pageshare_share) {
				.src_vm = a->fd[src], .client_vm = a->fd[!src],
				.src_gfn = PS_DATA_GFN + i, .client_gfn = PS_DATA_GFN + i,
				.src_handle = n[src][i].handle,
				.client_handle = n[!src][i].handle,
				.flags = PAGESHARE_SHARE_COMPARE,
			};
		}
		if (k && ps_batch(a->fd[0], PAGESHARE_SHARE_BATCH, s, k, &done))
			a->errors++;
		for (i = 0; i < k; i++) {
			a->shared += !s[i].result;
			a->errors += !benign(-s[i].result);
		}
		memset(&u, 0, sizeof(u));
		u.vm = a->fd[rand_r(&a->seed) & 1];
		u.gfn = PS_DATA_GFN + rand_r(&a->seed) % NP;
		if (ps_unshare(u.vm, u.gfn))
			a->errors++;
	}
	return NULL;
}

FIXTURE(race) {
	struct ps_guest g[2];
};

FIXTURE_SETUP(race)
{
	int i;

	memset(self->g, 0, sizeof(self->g));
	for (i = 0; i < 2; i++) {
		self->g[i].fd = -1;
		self->g[i].k.kvm = -1;
		self->g[i].k.vm = -1;
		self->g[i].k.vcpu = -1;
	}
	REQUIRE_DEVICE();
}

FIXTURE_TEARDOWN(race)
{
	EXPECT_EQ(0, ps_audit_all());
	ps_guest_destroy(&self->g[0]);
	ps_guest_destroy(&self->g[1]);
	EXPECT_EQ(0, ps_audit_all());
}

struct vcpu_writer {
	struct ps_guest *g;
	atomic_int *stop;
	int iterations, last_seed;
	char err[160];
};

static void *vcpu_writer(void *arg)
{
	struct vcpu_writer *w = arg;
	int i;

	for (i = 0; i < w->iterations; i++) {
		/* Two seeds: half the time both VMs hold the same bytes. */
		w->last_seed = i & 1 ? 0x1111 : 0x2222;
		if (ps_guest_fill(w->g, PS_DATA_GFN, NP, w->last_seed)) {
			snprintf(w->err, sizeof(w->err), "%s", w->g->err);
			break;
		}
	}
	atomic_store(w->stop, 1);
	return NULL;
}

/* A KVM guest rewrites its pages without pause while two agents share. */
TEST_F_TIMEOUT(race, vcpus_write_while_agents_share, 600)
{
	atomic_int stop = 0;
	struct vcpu_writer w = { .g = &self->g[0], .stop = &stop, .iterations = 24 };
	struct agent a[2];
	pthread_t tw, ta[2];
	uint32_t sum;
	int i;

	if (access("/dev/kvm", F_OK))
		SKIP(return, "no /dev/kvm");
	for (i = 0; i < 2; i++)
		ASSERT_EQ(0, ps_guest_create(&self->g[i], MIB)) TH_LOG("%s", self->g[i].err);
	/* VM 1 holds fixed bytes, equal to VM 0's every other round. */
	ASSERT_EQ(0, ps_guest_fill(&self->g[1], PS_DATA_GFN, NP, 0x2222));

	for (i = 0; i < 2; i++)
		a[i] = (struct agent){ .fd = { self->g[0].fd, self->g[1].fd },
				       .stop = &stop, .seed = i + 1 };
	ASSERT_EQ(0, pthread_create(&tw, NULL, vcpu_writer, &w));
	for (i = 0; i < 2; i++)
		ASSERT_EQ(0, pthread_create(&ta[i], NULL, agent, &a[i]));
	pthread_join(tw, NULL);
	for (i = 0; i < 2; i++)
		pthread_join(ta[i], NULL);

	EXPECT_STREQ("", w.err);
	for (i = 0; i < 2; i++) {
		EXPECT_EQ(0, a[i].errors);
		TH_LOG("agent %d: %d rounds, %d shares", i, a[i].rounds, a[i].shared);
	}
	/* The guest's last write is what VM 0 holds; VM 1 never changed. */
	EXPECT_EQ(0, ps_bad_fill_words(self->g[0].mem + PS_DATA_GFN * PS_PAGE,
				       PS_DATA_GFN, NP, w.last_seed));
	EXPECT_EQ(0, ps_bad_fill_words(self->g[1].mem + PS_DATA_GFN * PS_PAGE,
				       PS_DATA_GFN, NP, 0x2222));
	ASSERT_EQ(0, ps_guest_sum(&self->g[1], PS_DATA_GFN, NP, &sum));
	EXPECT_EQ(ps_host_sum(self->g[1].mem + PS_DATA_GFN * PS_PAGE, NP), sum);
}

/* The same with the VMM's own stores, many more rounds. */
struct host_writer {
	unsigned char *mem;
	atomic_int *stop;
	int iterations;
	uint32_t last[NP];
	unsigned int seed;
};

static void *host_writer(void *arg)
{
	struct host_writer *w = arg;
	int i, p;

	for (i = 0; i < w->iterations; i++) {
		p = rand_r(&w->seed) % NP;
		w->last[p] = rand_r(&w->seed) % 3;
		host_fill(w->mem + (PS_DATA_GFN + p) * PS_PAGE, PS_DATA_GFN + p, w->last[p]);
	}
	atomic_store(w->stop, 1);
	return NULL;
}

TEST_F_TIMEOUT(race, vmm_writes_while_agents_share, 600)
{
	struct host_writer w[2];
	atomic_int stop = 0;
	struct agent a[2];
	pthread_t tw[2], ta[2];
	int i, p;

	for (i = 0; i < 2; i++) {
		self->g[i].fd = ps_open();
		ASSERT_LE(0, self->g[i].fd);
		self->g[i].size = MIB;
		self->g[i].mem = ps_map(self->g[i].fd, MIB, 0);
		ASSERT_NE(MAP_FAILED, self->g[i].mem);
		self->g[i].k.kvm = -1;
		self->g[i].k.vm = -1;
		self->g[i].k.vcpu = -1;
		w[i] = (struct host_writer){ .mem = self->g[i].mem, .stop = &stop,
					     .iterations = 20000, .seed = 7 + i };
		for (p = 0; p < NP; p++)
			host_fill(self->g[i].mem + (PS_DATA_GFN + p) * PS_PAGE,
				  PS_DATA_GFN + p, 0);
	}
	for (i = 0; i < 2; i++)
		a[i] = (struct agent){ .fd = { self->g[0].fd, self->g[1].fd },
				       .stop = &stop, .seed = 3 + i };
	for (i = 0; i < 2; i++) {
		ASSERT_EQ(0, pthread_create(&tw[i], NULL, host_writer, &w[i]));
		ASSERT_EQ(0, pthread_create(&ta[i], NULL, agent, &a[i]));
	}
	for (i = 0; i < 2; i++) {
		pthread_join(tw[i], NULL);
		pthread_join(ta[i], NULL);
	}
	for (i = 0; i < 2; i++) {
		EXPECT_EQ(0, a[i].errors);
		TH_LOG("agent %d: %d rounds, %d shares", i, a[i].rounds, a[i].shared);
		for (p = 0; p < NP; p++)
			EXPECT_TRUE(host_filled(self->g[i].mem + (PS_DATA_GFN + p) * PS_PAGE,
						PS_DATA_GFN + p, w[i].last[p]))
				TH_LOG("vm %d page %d lost its last write", i, p);
	}
}

/* The VMM dies by SIGKILL in the middle of a batch of a million entries. */
TEST(sigkill_mid_batch)
{
	long frames = ps_sysfs_read("shared_frames");
	long vms = ps_sysfs_read("vms");
	int status, i;
	pid_t pid;

	REQUIRE_DEVICE();
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		static struct pageshare_nominate n[1 << 16];
		unsigned char *mem;
		int fd = ps_open();

		mem = ps_map(fd, 16 * MIB, 0);
		for (i = 0; i < 4096; i++)
			mem[i * PS_PAGE] = i & 7;
		for (i = 0; i < (1 << 16); i++) {
			n[i].vm = fd;
			n[i].gfn = i % 4096;
		}
		for (;;)
			ps_batch(fd, PAGESHARE_NOMINATE_BATCH, n, 1 << 16, NULL);
	}
	usleep(300 * 1000);
	kill(pid, SIGKILL);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFSIGNALED(status));
	EXPECT_EQ(0, ps_audit_all());
	EXPECT_EQ(vms, ps_sysfs_read("vms"));
	EXPECT_EQ(frames, ps_sysfs_read("shared_frames"));
}

/* Mappings go and come back while another thread shares their pages. */
struct remapper {
	int fd;
	atomic_int *stop;
	int rounds;
};

static void *remapper(void *arg)
{
	struct remapper *r = arg;
	unsigned char *p;

	while (!atomic_load(r->stop)) {
		p = ps_map(r->fd, MIB, 0);
		if (p == MAP_FAILED)
			continue;
		p[(PS_DATA_GFN + r->rounds % NP) * PS_PAGE] ^= 1;
		munmap(p, MIB);
		r->rounds++;
	}
	return NULL;
}

TEST_F_TIMEOUT(race, munmap_and_mmap_while_sharing, 600)
{
	atomic_int stop = 0;
	struct remapper r[2];
	struct agent a;
	pthread_t tr[2], ta;
	int i, p;

	for (i = 0; i < 2; i++) {
		self->g[i].fd = ps_open();
		ASSERT_LE(0, self->g[i].fd);
		ASSERT_EQ(0, ps_set_size(self->g[i].fd, MIB));
		self->g[i].k.kvm = -1;
		self->g[i].k.vm = -1;
		self->g[i].k.vcpu = -1;
		self->g[i].mem = ps_map(self->g[i].fd, MIB, 0);
		self->g[i].size = MIB;
		ASSERT_NE(MAP_FAILED, self->g[i].mem);
		for (p = 0; p < NP; p++)
			self->g[i].mem[(PS_DATA_GFN + p) * PS_PAGE] = 0;
		r[i] = (struct remapper){ .fd = self->g[i].fd, .stop = &stop };
	}
	a = (struct agent){ .fd = { self->g[0].fd, self->g[1].fd }, .stop = &stop, .seed = 9 };
	for (i = 0; i < 2; i++)
		ASSERT_EQ(0, pthread_create(&tr[i], NULL, remapper, &r[i]));
	ASSERT_EQ(0, pthread_create(&ta, NULL, agent, &a));
	usleep(2 * 1000 * 1000);
	atomic_store(&stop, 1);
	for (i = 0; i < 2; i++)
		pthread_join(tr[i], NULL);
	pthread_join(ta, NULL);
	EXPECT_EQ(0, a.errors);
	TH_LOG("%d + %d remaps, %d agent rounds, %d shares", r[0].rounds, r[1].rounds,
	       a.rounds, a.shared);
}

/* A forked VMM's child writes guest memory: it is the VM's gfn it writes. */
TEST(fork_of_the_vmm)
{
	unsigned char *a, *b;
	int fa, fb, status;
	uint64_t ha, hb;
	pid_t pid;

	REQUIRE_DEVICE();
	fa = ps_open();
	fb = ps_open();
	a = ps_map(fa, MIB, 0);
	b = ps_map(fb, MIB, 0);
	ASSERT_NE(MAP_FAILED, a);
	ASSERT_NE(MAP_FAILED, b);
	memset(a + 5 * PS_PAGE, 0x3c, PS_PAGE);
	memset(b + 5 * PS_PAGE, 0x3c, PS_PAGE);
	ASSERT_EQ(0, ps_nominate(fa, 5, &ha, NULL));
	ASSERT_EQ(0, ps_nominate(fb, 5, &hb, NULL));
	ASSERT_EQ(0, ps_share(fa, 5, ha, fb, 5, hb, PAGESHARE_SHARE_COMPARE));

	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		a[5 * PS_PAGE + 1] = 0x42;	/* the child's store breaks the share */
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_EQ(0x42, a[5 * PS_PAGE + 1]);
	EXPECT_EQ(0x3c, b[5 * PS_PAGE + 1]);
	EXPECT_EQ(0, ps_audit_all());
	munmap(a, MIB);
	munmap(b, MIB);
	close(fa);
	close(fb);
	EXPECT_EQ(0, ps_audit_all());
}

/*
 * add_to_physmap into the last gfn of an unmapped VM while another thread
 * shrinks it to one page and grows it back: no entry may survive past a
 * shrink (the audit checks every entry against its VM's size). Each
 * insert lands in an empty part of the VM's tree, so it allocates a node.
 */
struct shrinker {
	int fd;
	atomic_int *stop;
	int rounds, audit_errors;
};

#define SHRINK_SIZE	(64 * MIB)

/*
 * Shrinks to one page, audits while the VM is that small (an entry that
 * an add_to_physmap put past the size after the shrink passed it is seen
 * only then: the next grow covers it again), and grows back.
 */
static void *shrinker(void *arg)
{
	struct shrinker *s = arg;

	while (!atomic_load(s->stop)) {
		if (ps_set_size(s->fd, PS_PAGE))
			break;
		if (ps_audit(s->fd))
			s->audit_errors++;
		if (ps_set_size(s->fd, SHRINK_SIZE))
			break;
		s->rounds++;
	}
	return NULL;
}

TEST(add_to_physmap_while_shrinking)
{
	atomic_int stop = 0;
	struct shrinker s = { .stop = &stop };
	uint64_t h, last = SHRINK_SIZE / PS_PAGE - 1, gfn;
	int i, added = 0, bad = 0, src;
	unsigned char *mem;
	time_t t0;
	pthread_t t;

	REQUIRE_DEVICE();
	src = ps_open();
	ASSERT_LE(0, src);
	mem = ps_map(src, MIB, 0);
	ASSERT_NE(MAP_FAILED, mem);
	s.fd = ps_open();
	ASSERT_LE(0, s.fd);
	ASSERT_EQ(0, ps_set_size(s.fd, SHRINK_SIZE));
	host_fill(mem + PS_DATA_GFN * PS_PAGE, PS_DATA_GFN, 3);
	ASSERT_EQ(0, ps_nominate(src, PS_DATA_GFN, &h, NULL));
	ASSERT_EQ(0, pthread_create(&t, NULL, shrinker, &s));
	t0 = time(NULL);
	for (i = 0; i < 20000 && time(NULL) - t0 < 10; i++) {
		/* Spread over the VM: each gfn wants nodes of its own. */
		gfn = last - (i % 8) * 2048;
		if (!ps_add_to_physmap(src, PS_DATA_GFN, h, s.fd, gfn))
			added++;
		else if (errno != ENXIO && errno != EEXIST)
			bad++;
	}
	atomic_store(&stop, 1);
	pthread_join(t, NULL);
	TH_LOG("%d of %d add_to_physmap calls landed, %d shrinks, each audited",
	       added, i, s.rounds);
	EXPECT_EQ(0, bad);
	EXPECT_EQ(0, s.audit_errors) TH_LOG("entries past a shrunk size");
	EXPECT_EQ(0, ps_audit_all());
	/* A gfn the last shrink cut off is a hole when the VM grows again. */
	ASSERT_EQ(0, ps_set_size(s.fd, PS_PAGE));
	ASSERT_EQ(0, ps_set_size(s.fd, SHRINK_SIZE));
	for (i = 0; i < 8; i++) {
		struct pageshare_query q;

		ASSERT_EQ(0, ps_query(s.fd, last - i * 2048, &q))
			TH_LOG("query of gfn %lu: %s", (unsigned long)(last - i * 2048),
			       strerror(errno));
		EXPECT_EQ(PAGESHARE_STATE_HOLE, q.state);
	}
	EXPECT_EQ(0, ps_audit_all());
	close(s.fd);
	munmap(mem, MIB);
	close(src);
}

/*
 * Audits while a 16 MiB VM shrinks to one page and grows back, and while
 * another is torn down: both release 64 gfns per section, so the audit
 * sees them half released, and must find every invariant holding (the
 * gfns past the new size are on their way out, not past the size).
 *
 * The audit stops sharing operations, shrinks included, for as long as it
 * walks every VM, and here it runs back to back: each 64-gfn section of a
 * shrink may wait for a whole audit. Under emulation that takes minutes,
 * not the harness's default 30 s, hence the fixture and its timeout.
 */
struct auditor {
	atomic_int *stop;
	int audits, errors;
};

static void *auditor(void *arg)
{
	struct auditor *a = arg;

	while (!atomic_load(a->stop)) {
		if (ps_audit_all())
			a->errors++;
		a->audits++;
	}
	return NULL;
}

#define HALF_SIZE	(16 * MIB)

static void fill_unmapped(int fd)
{
	unsigned char *m = ps_map(fd, HALF_SIZE, 0);
	size_t i;

	if (m == MAP_FAILED)
		return;
	for (i = 0; i < HALF_SIZE / PS_PAGE; i++)
		m[i * PS_PAGE] = i;
	munmap(m, HALF_SIZE);
}

FIXTURE(slow) {
	int unused;
};

FIXTURE_SETUP(slow)
{
}

FIXTURE_TEARDOWN(slow)
{
}

TEST_F_TIMEOUT(slow, audit_while_half_released, 600)
{
	atomic_int stop = 0;
	struct auditor a = { .stop = &stop };
	struct timespec t0, t1;
	pthread_t t;
	int fd, gone, i;

	REQUIRE_DEVICE();
	fd = ps_open();
	gone = ps_open();
	ASSERT_LE(0, fd);
	ASSERT_LE(0, gone);
	fill_unmapped(fd);
	fill_unmapped(gone);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ASSERT_EQ(0, pthread_create(&t, NULL, auditor, &a));
	for (i = 0; i < 2; i++) {
		EXPECT_EQ(0, ps_set_size(fd, PS_PAGE));
		EXPECT_EQ(0, ps_set_size(fd, HALF_SIZE));
		fill_unmapped(fd);
	}
	close(gone);
	atomic_store(&stop, 1);
	pthread_join(t, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	TH_LOG("%d audits during 2 shrinks and a teardown, %.1f s", a.audits,
	       (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
	EXPECT_EQ(0, a.errors);
	EXPECT_LT(0, a.audits);
	close(fd);
	EXPECT_EQ(0, ps_audit_all());
}

TEST_HARNESS_MAIN
