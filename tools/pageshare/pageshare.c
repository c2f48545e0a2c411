// SPDX-License-Identifier: GPL-2.0
/*
 * pageshare: the command-line agent of the pageshare module. It lists the VMs
 * and their counters, puts VMs in a share group, runs the audit, and
 * deduplicates guest memory (dedup.c) through libpageshare.
 */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "dedup.h"
#include "pageshare.h"

#define PAGESHARE_TOOL_VERSION	"1.0.0"

#define EXIT_USAGE	2
#define MIB		(1024.0 * 1024.0)

#ifndef __printf
#define __printf(a, b)	__attribute__((format(printf, a, b)))
#endif
#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))

/* Set by SIGINT and SIGTERM; a lock-free atomic is async-signal-safe. */
static int stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	__atomic_store_n(&stop_flag, 1, __ATOMIC_RELAXED);
}

static bool stop_requested(void)
{
	return __atomic_load_n(&stop_flag, __ATOMIC_RELAXED);
}

/*
 * SIGINT and SIGTERM ask for a clean stop: the pass in progress releases
 * what it nominated, and the command exits. A second one kills, as usual.
 * No SA_RESTART, so that a sleep ends at once.
 */
static void catch_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESETHAND;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

static void fail(const char *what, enum pageshare_op op, int err)
{
	fprintf(stderr, "pageshare: %s: %s\n", what, pageshare_strerror(op, err));
}

__printf(1, 2)
static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "pageshare: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'pageshare --help'.\n");
	return EXIT_USAGE;
}

/* getopt_long() with opterr 0 and a ':' first in the option string. */
static int bad_option(const char *cmd, int c, char **argv)
{
	const char *sep = cmd ? ": " : "";

	if (!cmd)
		cmd = "";
	if (c == ':')
		return usage_error("%s%soption '%s' needs an argument", cmd, sep, argv[optind - 1]);
	return usage_error("%s%sunknown option '%s'", cmd, sep, argv[optind - 1]);
}

static bool parse_u64(const char *s, uint64_t *v)
{
	char *end;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	*v = strtoull(s, &end, 10);
	return !errno && !*end;
}

/* A positive number of seconds, fractions allowed. */
static bool parse_seconds(const char *s, double *v)
{
	char *end;

	errno = 0;
	*v = strtod(s, &end);
	return !errno && end != s && !*end && *v > 0 && *v <= 1e6;
}

static size_t page_size(void)
{
	long ps = sysconf(_SC_PAGESIZE);

	return ps > 0 ? (size_t)ps : 4096;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* Sleep until @deadline (CLOCK_MONOTONIC ns) or a stop request. */
static void sleep_until(uint64_t deadline)
{
	while (!stop_requested()) {
		uint64_t now = now_ns();
		struct timespec ts;

		if (now >= deadline)
			return;
		ts.tv_sec = (deadline - now) / 1000000000ULL;
		ts.tv_nsec = (deadline - now) % 1000000000ULL;
		nanosleep(&ts, NULL);
	}
}

/* The option table of a subcommand that has only --help. */
static const struct option help_only[] = {
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static void usage_main(FILE *f)
{
	fprintf(f,
		"Usage: pageshare [--device PATH] [--sysfs DIR] COMMAND [OPTIONS]\n"
		"\n"
		"Page sharing between KVM guests whose memory comes from a pageshare mount.\n"
		"\n"
		"Commands:\n"
		"  vms      list the VMs: owner, size, pages, share group, policy\n"
		"  stat     show the module's counters and each VM's\n"
		"  dedup    deduplicate the VMs' memory, once or every few seconds\n"
		"  group    put VMs in one share group, so that they may share pages\n"
		"  audit    check every invariant of the module (kernel log has details)\n"
		"\n"
		"Options:\n"
		"  --device PATH  the device node (default %s)\n"
		"  --sysfs DIR    the module's sysfs directory (default %s)\n"
		"  -h, --help     this help; 'pageshare COMMAND --help' for a command's\n"
		"  -V, --version  the version\n"
		"\n"
		"Exit status: 0 success, 1 failure, 2 usage error. See pageshare(8).\n",
		PAGESHARE_DEVICE_PATH, PAGESHARE_SYSFS_ROOT);
}

static int help_or_error(const char *cmd, int argc, char **argv,
			 void (*usage)(FILE *f))
{
	int c;

	optind = 0;
	while ((c = getopt_long(argc, argv, ":h", help_only, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			return 0;
		}
		return bad_option(cmd, c, argv);
	}
	if (optind < argc)
		return usage_error("%s: unexpected argument '%s'", cmd, argv[optind]);
	return -1;
}

static void usage_vms(FILE *f)
{
	fprintf(f,
		"Usage: pageshare vms\n"
		"\n"
		"List the VMs from the module's sysfs directory (root only): id, the pid\n"
		"and uid of the process that created the VM's file, size in MiB, private\n"
		"pages, gfns in shared state, of those the ones alone on their frame\n"
		"(nominated), share group (or -) and policy.\n");
}

static const char *policy_name(uint32_t policy)
{
	return policy & PAGESHARE_POLICY_NO_INTRA_VM ? "no-intra-vm" : "default";
}

static void print_group(FILE *f, uint64_t group, int width)
{
	char buf[24];

	if (group)
		snprintf(buf, sizeof(buf), "%#" PRIx64, group);
	else
		snprintf(buf, sizeof(buf), "-");
	fprintf(f, "%-*s", width, buf);
}

static int cmd_vms(int argc, char **argv)
{
	struct pageshare_vm_stat *vms;
	size_t n, i;
	int ret;

	ret = help_or_error("vms", argc, argv, usage_vms);
	if (ret >= 0)
		return ret;
	ret = pageshare_list_vms(&vms, &n);
	if (ret) {
		fail(pageshare_sysfs_root(), PAGESHARE_OP_SYSFS, ret);
		return 1;
	}
	printf("%6s %8s %6s %10s %10s %10s %10s  %-18s  %s\n", "ID", "PID", "UID", "SIZE_MIB",
	       "PRIVATE", "SHARED", "NOMINATED", "GROUP", "POLICY");
	for (i = 0; i < n; i++) {
		const struct pageshare_vm_stat *v = &vms[i];

		printf("%6" PRIu64 " %8" PRId64 " %6" PRIu64 " %10.1f %10" PRIu64 " %10" PRIu64
		       " %10" PRIu64 "  ", v->id, v->pid, v->uid, v->size / MIB, v->private_pages,
		       v->shared_gfns, v->nominated_gfns);
		print_group(stdout, v->group, 18);
		printf("  %s\n", policy_name(v->policy));
	}
	pageshare_free_vm_list(vms);
	return 0;
}

static void usage_stat(FILE *f)
{
	fprintf(f,
		"Usage: pageshare stat [--json] [--watch SECONDS]\n"
		"\n"
		"Show the module's counters (VMs, private pages, shared frames, saved\n"
		"frames and MiB, metadata bytes) and each VM's (private pages, gfns in\n"
		"shared state, nominated gfns, copy-on-write breaks).\n"
		"\n"
		"  --json             one JSON object on one line\n"
		"  --watch SECONDS    again every SECONDS (fractions allowed), until\n"
		"                     interrupted; with --json, one line each time\n"
		"  -h, --help         this help\n");
}

static void stat_text(const struct pageshare_global_stats *g, const struct pageshare_vm_stat *vms,
		      size_t n, size_t ps, bool watch)
{
	size_t i;

	if (watch) {
		char when[64];
		time_t t = time(NULL);

		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime(&t));
		printf("--- %s\n", when);
	}
	printf("vms            %" PRIu64 "\n", g->vms);
	printf("private pages  %" PRIu64 " (%.1f MiB)\n", g->private_pages,
	       g->private_pages * (double)ps / MIB);
	printf("shared frames  %" PRIu64 " (%.1f MiB)\n", g->shared_frames,
	       g->shared_frames * (double)ps / MIB);
	printf("saved frames   %" PRIu64 "\n", g->saved_frames);
	printf("saved          %.1f MiB\n", g->saved_frames * (double)ps / MIB);
	printf("metadata       %" PRIu64 " bytes\n", g->meta_bytes);
	if (!n)
		return;
	printf("\n%6s %10s %10s %10s %10s\n", "ID", "PRIVATE", "SHARED", "NOMINATED", "COW_BREAKS");
	for (i = 0; i < n; i++)
		printf("%6" PRIu64 " %10" PRIu64 " %10" PRIu64 " %10" PRIu64 " %10" PRIu64 "\n",
		       vms[i].id, vms[i].private_pages, vms[i].shared_gfns, vms[i].nominated_gfns,
		       vms[i].cow_breaks);
}

/* One "key":value member of a JSON object; @first: no comma before it. */
static void json_u64(const char *key, uint64_t val, bool first)
{
	printf("%s\"%s\":%" PRIu64, first ? "" : ",", key, val);
}

static void stat_json(const struct pageshare_global_stats *g, const struct pageshare_vm_stat *vms,
		      size_t n, size_t ps)
{
	struct timeval tv;
	size_t i;

	gettimeofday(&tv, NULL);
	printf("{\"time\":%lld.%03ld", (long long)tv.tv_sec, (long)(tv.tv_usec / 1000));
	json_u64("page_size", ps, false);
	json_u64("vms", g->vms, false);
	json_u64("private_pages", g->private_pages, false);
	json_u64("shared_frames", g->shared_frames, false);
	json_u64("saved_frames", g->saved_frames, false);
	printf(",\"saved_mib\":%.1f", g->saved_frames * (double)ps / MIB);
	json_u64("meta_bytes", g->meta_bytes, false);
	printf(",\"vm\":[");
	for (i = 0; i < n; i++) {
		const struct pageshare_vm_stat *v = &vms[i];

		printf("%s{", i ? "," : "");
		json_u64("id", v->id, true);
		printf(",\"pid\":%" PRId64, v->pid);
		json_u64("uid", v->uid, false);
		json_u64("size", v->size, false);
		printf(",\"group\":\"%#" PRIx64 "\"", v->group);
		printf(",\"policy\":\"%s\"", policy_name(v->policy));
		json_u64("private_pages", v->private_pages, false);
		json_u64("shared_gfns", v->shared_gfns, false);
		json_u64("nominated_gfns", v->nominated_gfns, false);
		json_u64("cow_breaks", v->cow_breaks, false);
		printf("}");
	}
	printf("]}\n");
}

static int cmd_stat(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "watch", required_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool json = false, watch = false;
	double interval = 0;
	size_t ps = page_size();
	int c;

	optind = 0;
	while ((c = getopt_long(argc, argv, ":hjw:", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'w':
			if (!parse_seconds(optarg, &interval))
				return usage_error("stat: --watch needs a number of seconds > 0");
			watch = true;
			break;
		case 'h':
			usage_stat(stdout);
			return 0;
		default:
			return bad_option("stat", c, argv);
		}
	}
	if (optind < argc)
		return usage_error("stat: unexpected argument '%s'", argv[optind]);
	if (watch)
		catch_signals();
	for (;;) {
		uint64_t start = now_ns();
		struct pageshare_global_stats g;
		struct pageshare_vm_stat *vms;
		size_t n;
		int ret;

		ret = pageshare_read_global_stats(&g);
		if (!ret)
			ret = pageshare_list_vms(&vms, &n);
		if (ret) {
			fail(pageshare_sysfs_root(), PAGESHARE_OP_SYSFS, ret);
			return 1;
		}
		if (json)
			stat_json(&g, vms, n, ps);
		else
			stat_text(&g, vms, n, ps, watch);
		pageshare_free_vm_list(vms);
		fflush(stdout);
		if (!watch)
			return 0;
		sleep_until(start + (uint64_t)(interval * 1e9));
		if (stop_requested())
			return 0;
		if (!json)
			printf("\n");
	}
}

/* libpageshare under the dedup core. */
struct kernel {
	int ctl;
};

static int k_list_vms(void *ctx, uint64_t **ids, size_t *count)
{
	struct pageshare_vm_stat *vms;
	size_t n, i;
	int ret;

	(void)ctx;
	ret = pageshare_list_vms(&vms, &n);
	if (ret)
		return ret;
	*ids = malloc((n ? n : 1) * sizeof(**ids));
	if (!*ids) {
		pageshare_free_vm_list(vms);
		return -ENOMEM;
	}
	for (i = 0; i < n; i++)
		(*ids)[i] = vms[i].id;
	*count = n;
	pageshare_free_vm_list(vms);
	return 0;
}

static int k_open_vm(void *ctx, uint64_t id)
{
	return pageshare_vm_open_id(((struct kernel *)ctx)->ctl, id);
}

static void k_close_vm(void *ctx, int vm)
{
	(void)ctx;
	close(vm);
}

static int k_get_size(void *ctx, int vm, uint64_t *bytes)
{
	struct pageshare_vm_info info;
	int ret;

	(void)ctx;
	ret = pageshare_get_info(vm, &info);
	if (!ret)
		*bytes = info.size;
	return ret;
}

static int k_get_policy(void *ctx, int vm, uint64_t *group, uint32_t *flags)
{
	(void)ctx;
	return pageshare_get_policy(vm, group, flags);
}

static int k_nominate(void *ctx, struct pageshare_nominate *e, size_t n)
{
	return pageshare_nominate_batch(((struct kernel *)ctx)->ctl, e, n, NULL);
}

static int k_share(void *ctx, struct pageshare_share *e, size_t n)
{
	return pageshare_share_batch(((struct kernel *)ctx)->ctl, e, n, NULL);
}

static int k_unshare(void *ctx, struct pageshare_unshare *e, size_t n)
{
	return pageshare_unshare_batch(((struct kernel *)ctx)->ctl, e, n, NULL);
}

static int k_query(void *ctx, struct pageshare_query *e, size_t n)
{
	return pageshare_query_batch(((struct kernel *)ctx)->ctl, e, n, NULL);
}

static int k_get_private(void *ctx, int vm, uint64_t start, uint64_t *gfns, uint32_t max,
			 uint32_t *count, uint64_t *next, uint64_t *discards)
{
	(void)ctx;
	return pageshare_get_private(vm, start, gfns, max, count, next, discards);
}

static int k_saved_frames(void *ctx, uint64_t *frames)
{
	struct pageshare_stats st;
	int ret = pageshare_get_stats(((struct kernel *)ctx)->ctl, &st);

	if (!ret)
		*frames = st.saved_frames;
	return ret;
}

static int k_audit(void *ctx)
{
	return pageshare_audit(((struct kernel *)ctx)->ctl);
}

/* The control node, for the privileged ioctls. */
static int open_control(void)
{
	int fd = pageshare_control_open();

	if (fd < 0)
		fail(pageshare_device_path(), PAGESHARE_OP_CONTROL, fd);
	return fd;
}

static void usage_dedup(FILE *f)
{
	fprintf(f,
		"Usage: pageshare dedup [--vm ID]... [--interval SECONDS [--full-passes]]\n"
		"                       [--max-pages-per-sec N] [--verify] [--quiet]\n"
		"\n"
		"Share the equal pages of the VMs (every VM with memory, or those given\n"
		"with --vm): nominate every page with its hash, share each set of equal\n"
		"pages within a share scope (a share group, or a VM in none) into the page\n"
		"of the lowest VM id with the kernel comparing the bytes, and make the\n"
		"pages left alone private again. Needs CAP_SYS_ADMIN.\n"
		"\n"
		"With --interval, the passes are incremental: a page unchanged since the\n"
		"last pass is not nominated and hashed again, and pages left alone stay\n"
		"nominated (read-only) between passes, until the command exits. The\n"
		"kernel lists the pages written since (PAGESHARE_GET_PRIVATE), so a pass\n"
		"over VMs that changed little costs little, however big they are.\n"
		"\n"
		"  --vm ID                  only this VM; may be repeated\n"
		"  --interval SECONDS       a pass every SECONDS until interrupted\n"
		"                           (default: one pass)\n"
		"  --full-passes            with --interval: every pass nominates and hashes\n"
		"                           every page and makes the pages left alone private\n"
		"  --max-pages-per-sec N    nominate at most N pages a second\n"
		"  --verify                 run the audit after each pass; exit 1 on a problem\n"
		"  --quiet                  print only the summary line of each pass\n"
		"  -h, --help               this help\n"
		"\n"
		"Each pass ends with a line of the form (see pageshare(8)):\n"
		"  dedup: scanned=N shared=N zero=N skipped=N retried=N saved_mib=X.X ...\n");
}

struct ui {
	bool tty;
	bool quiet;
	bool drawn;
	enum dedup_event phase;
	bool started;
	uint64_t vm_id;
	uint64_t last_ns;
	size_t page_size;
};

static const char *phase_name(enum dedup_event ev)
{
	switch (ev) {
	case DEDUP_EV_VM:
	case DEDUP_EV_NOMINATE:
		return "nominate";
	case DEDUP_EV_SHARE:
		return "share";
	case DEDUP_EV_RELEASE:
		return "release";
	}
	return "";
}

static void ui_bar(struct ui *ui, const struct dedup_progress *p)
{
	uint64_t now = now_ns();
	int width = 30, fill, pct;
	char bar[64];

	if (ui->started && ui->phase == p->event && p->done < p->total &&
	    now - ui->last_ns < 100000000ULL)
		return;
	ui->last_ns = now;
	pct = p->total ? (int)(p->done * 100 / p->total) : 100;
	fill = pct * width / 100;
	memset(bar, '#', fill);
	memset(bar + fill, '.', width - fill);
	bar[width] = '\0';
	fprintf(stderr, "\r[%s] %3d%% %-8s %" PRIu64 "/%" PRIu64, bar, pct, phase_name(p->event),
		p->done, p->total);
	if (p->event == DEDUP_EV_NOMINATE)
		fprintf(stderr, " pages (VM %" PRIu64 ")", ui->vm_id);
	fprintf(stderr, "\033[K");
	ui->drawn = true;
}

/* A progress bar on a terminal, a line per phase otherwise. */
static void ui_progress(void *ctx, const struct dedup_progress *p)
{
	struct ui *ui = ctx;
	bool new_phase = !ui->started || ui->phase != p->event;

	if (ui->quiet)
		return;
	if (p->event == DEDUP_EV_VM) {
		ui->vm_id = p->vm_id;
		if (!ui->tty)
			fprintf(stderr, "dedup: VM %" PRIu64 ": nominating %" PRIu64
				" pages (%.1f MiB)\n", p->vm_id, p->total,
				p->total * (double)ui->page_size / MIB);
		return;
	}
	if (ui->tty)
		ui_bar(ui, p);
	else if (new_phase && p->event == DEDUP_EV_SHARE)
		fprintf(stderr, "dedup: sharing %" PRIu64 " sets of equal pages\n", p->total);
	else if (new_phase && p->event == DEDUP_EV_RELEASE)
		fprintf(stderr, "dedup: checking %" PRIu64 " pages left alone\n", p->total);
	ui->phase = p->event;
	ui->started = true;
}

static void ui_clear(struct ui *ui)
{
	if (ui->drawn)
		fprintf(stderr, "\r\033[K");
	ui->drawn = false;
	ui->started = false;
}

static void ui_notice(void *ctx, const char *msg)
{
	struct ui *ui = ctx;

	if (ui->quiet)
		return;
	ui_clear(ui);
	fprintf(stderr, "pageshare: %s\n", msg);
}

static void dedup_report(const struct dedup_result *r, unsigned int pass, bool interval,
			 bool incremental, bool quiet, size_t ps)
{
	double secs = r->ns / 1e9;
	double mib = r->scanned * (double)ps / MIB;
	double mibps = secs > 0 ? mib / secs : 0;

	if (!quiet) {
		if (interval)
			printf("pass %u: ", pass);
		printf("%" PRIu64 " VMs, %" PRIu64 " pages (%.1f MiB) scanned", r->vms, r->scanned,
		       mib);
		printf(" in %.2f s, %.1f MiB/s", secs, mibps);
		printf("%s\n", r->interrupted ? ", interrupted" : "");
		printf("  shared   %" PRIu64 " pages onto %" PRIu64 " frames (%" PRIu64
		       " zero pages), %" PRIu64 " already shared, %" PRIu64 " retried\n",
		       r->shared, r->frames, r->zero, r->already, r->retried);
		printf("  skipped  %" PRIu64 ": %" PRIu64 " holes, %" PRIu64 " busy, %" PRIu64
		       " differ, %" PRIu64 " stale, %" PRIu64 " policy, %" PRIu64 " errors\n",
		       dedup_skipped(r), r->holes, r->busy, r->differ, r->stale, r->policy,
		       r->errors);
		printf("  alone    %" PRIu64 " pages with no equal; %" PRIu64
		       " made private again", r->alone, r->unshared);
		if (incremental)
			printf(", %" PRIu64 " kept nominated", r->kept_alone);
		printf("\n");
		if (incremental)
			printf("  reused   %" PRIu64 " pages unchanged since the last pass, %s; %"
			       PRIu64 " queried in %" PRIu64 " calls, %" PRIu64
			       " listed private in %" PRIu64 " calls\n", r->reused,
			       "not hashed again", r->queried, r->query_calls, r->private_listed,
			       r->private_calls);
		if (r->index_pass)
			printf("  indexed  %" PRIu64 " pages looked up in the content index, %"
			       PRIu64 " frames found there\n", r->indexed, r->index_reps);
		printf("  saved    %.1f MiB (", dedup_saved_mib(r, ps));
		if (r->saved_known)
			printf("saved_frames %+" PRId64 "; ", r->saved_delta);
		printf("this pass freed %" PRIu64 " frames)\n", r->freed);
		if (r->audit >= 0)
			printf("  audit    %d problems\n", r->audit);
	}
	/* Scripts parse this line: new fields go at the end. */
	printf("dedup: scanned=%" PRIu64 " shared=%" PRIu64 " zero=%" PRIu64 " skipped=%" PRIu64
	       " retried=%" PRIu64 " saved_mib=%.1f seconds=%.2f mib_per_s=%.1f reused=%" PRIu64
	       " queried=%" PRIu64 " query_calls=%" PRIu64 " kept_alone=%" PRIu64
	       " private_calls=%" PRIu64 " private_listed=%" PRIu64 " indexed=%" PRIu64
	       " index_reps=%" PRIu64 " index_pass=%" PRIu64 "\n",
	       r->scanned, r->shared, r->zero, dedup_skipped(r), r->retried,
	       dedup_saved_mib(r, ps), secs, mibps, r->reused, r->queried, r->query_calls,
	       r->kept_alone, r->private_calls, r->private_listed, r->indexed, r->index_reps,
	       r->index_pass);
	fflush(stdout);
}

/*
 * Before exiting, make the pages that incremental passes kept nominated
 * private again: nobody would remember them after the command. Without
 * progress lines: after the last pass's summary, they would look like
 * another pass's to a script that takes the last "dedup:" line.
 */
static int dedup_release_kept(const struct dedup_backend *be, const struct dedup_config *cfg,
			      bool quiet)
{
	struct dedup_config c = *cfg;
	struct dedup_result res;
	int ret;

	c.progress = NULL;
	ret = dedup_state_release(be, &c, &res);
	if (ret) {
		fail(res.err_what, res.err_op, ret);
		return 1;
	}
	if (!quiet && res.unshared)
		printf("released %" PRIu64 " pages kept nominated since the last pass %s\n",
		       res.unshared, "(made private again)");
	fflush(stdout);
	return 0;
}

static int cmd_dedup(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "vm", required_argument, NULL, 'v' },
		{ "interval", required_argument, NULL, 'i' },
		{ "full-passes", no_argument, NULL, 'F' },
		{ "max-pages-per-sec", required_argument, NULL, 'r' },
		{ "verify", no_argument, NULL, 'V' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct dedup_backend be = {
		.list_vms = k_list_vms, .open_vm = k_open_vm, .close_vm = k_close_vm,
		.get_size = k_get_size, .get_policy = k_get_policy, .nominate = k_nominate,
		.share = k_share, .unshare = k_unshare, .query = k_query,
		.get_private = k_get_private, .saved_frames = k_saved_frames, .audit = k_audit,
	};
	struct dedup_config cfg = { 0 };
	struct ui ui = { 0 };
	struct kernel k;
	uint64_t *ids = NULL, id, rate;
	size_t nr_ids = 0;
	double interval = 0;
	bool full_passes = false;
	unsigned int pass;
	int c, ret = 0;

	optind = 0;
	while ((c = getopt_long(argc, argv, ":hq", opts, NULL)) != -1) {
		switch (c) {
		case 'v': {
			uint64_t *tmp;

			if (!parse_u64(optarg, &id) || !id) {
				free(ids);
				return usage_error("dedup: --vm needs a VM id, not '%s'", optarg);
			}
			tmp = realloc(ids, (nr_ids + 1) * sizeof(*ids));
			if (!tmp) {
				free(ids);
				fail("dedup", PAGESHARE_OP_OPEN_VM, -ENOMEM);
				return 1;
			}
			ids = tmp;
			ids[nr_ids++] = id;
			break;
		}
		case 'i':
			if (!parse_seconds(optarg, &interval)) {
				free(ids);
				return usage_error("dedup: --interval needs seconds > 0");
			}
			break;
		case 'F':
			full_passes = true;
			break;
		case 'r':
			if (!parse_u64(optarg, &rate) || !rate) {
				free(ids);
				return usage_error("dedup: --max-pages-per-sec needs a number > 0");
			}
			cfg.max_pages_per_sec = (double)rate;
			break;
		case 'V':
			cfg.verify = true;
			break;
		case 'q':
			ui.quiet = true;
			break;
		case 'h':
			free(ids);
			usage_dedup(stdout);
			return 0;
		default:
			free(ids);
			return bad_option("dedup", c, argv);
		}
	}
	if (optind < argc) {
		free(ids);
		return usage_error("dedup: unexpected argument '%s'", argv[optind]);
	}

	k.ctl = open_control();
	if (k.ctl < 0) {
		free(ids);
		return 1;
	}
	/* A single pass is always a full one: it keeps nothing nominated. */
	if (interval > 0 && !full_passes) {
		cfg.state = dedup_state_new();
		if (!cfg.state) {
			fail("dedup", PAGESHARE_OP_NOMINATE, -ENOMEM);
			close(k.ctl);
			free(ids);
			return 1;
		}
	}
	be.ctx = &k;
	ui.tty = isatty(STDERR_FILENO);
	ui.page_size = page_size();
	cfg.vm_ids = ids;
	cfg.nr_vm_ids = nr_ids;
	cfg.page_size = ui.page_size;
	cfg.stop = &stop_flag;
	cfg.progress = ui_progress;
	cfg.notice = ui_notice;
	cfg.cb_ctx = &ui;
	catch_signals();
	for (pass = 1; ; pass++) {
		uint64_t start = now_ns();
		struct dedup_result res;

		ret = dedup_pass(&be, &cfg, &res);
		ui_clear(&ui);
		if (ret) {
			fail(res.err_what, res.err_op, ret);
			ret = 1;
			break;
		}
		dedup_report(&res, pass, interval > 0, !!cfg.state, ui.quiet, ui.page_size);
		if (res.audit > 0) {
			fprintf(stderr, "pageshare: audit: %d problems after pass %u %s\n",
				res.audit, pass, "(see the kernel log)");
			ret = 1;
			break;
		}
		if (interval <= 0 || stop_requested())
			break;
		sleep_until(start + (uint64_t)(interval * 1e9));
		if (stop_requested())
			break;
	}
	if (cfg.state && dedup_release_kept(&be, &cfg, ui.quiet))
		ret = 1;
	dedup_state_free(cfg.state);
	close(k.ctl);
	free(ids);
	return ret;
}

static void usage_group(FILE *f)
{
	fprintf(f,
		"Usage: pageshare group [--no-intra] [--join] ID ID...\n"
		"\n"
		"Put the VMs with these ids in one new share group, so that they may\n"
		"share pages with each other (by default a VM shares with no other).\n"
		"This is how an operator lets VMMs that know nothing of pageshare, such\n"
		"as QEMU, share; the group's id is the right to join it. A VM's group\n"
		"changes only while none of its pages is shared with another VM.\n"
		"Needs CAP_SYS_ADMIN.\n"
		"\n"
		"  --no-intra    also forbid each VM to share pages within itself\n"
		"  --join        add the other VMs to the first VM's group instead of\n"
		"                making a new one\n"
		"  -h, --help    this help\n");
}

static int cmd_group(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "no-intra", no_argument, NULL, 'n' },
		{ "join", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint32_t flags = 0, old_flags;
	bool join = false;
	uint64_t *ids, group = 0;
	int c, i, n, ctl, *fds, ret = 1;
	char what[64];

	optind = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			flags |= PAGESHARE_POLICY_NO_INTRA_VM;
			break;
		case 'j':
			join = true;
			break;
		case 'h':
			usage_group(stdout);
			return 0;
		default:
			return bad_option("group", c, argv);
		}
	}
	n = argc - optind;
	if (n < 2)
		return usage_error("group: needs two VM ids or more");
	ids = calloc(n, sizeof(*ids));
	fds = calloc(n, sizeof(*fds));
	if (!ids || !fds) {
		free(ids);
		free(fds);
		fail("group", PAGESHARE_OP_SET_POLICY, -ENOMEM);
		return 1;
	}
	for (i = 0; i < n; i++) {
		fds[i] = -1;
		if (!parse_u64(argv[optind + i], &ids[i]) || !ids[i]) {
			free(ids);
			free(fds);
			return usage_error("group: '%s' is not a VM id", argv[optind + i]);
		}
	}
	ctl = open_control();
	if (ctl < 0)
		goto out;
	for (i = 0; i < n; i++) {
		fds[i] = pageshare_vm_open_id(ctl, ids[i]);
		if (fds[i] < 0) {
			snprintf(what, sizeof(what), "open VM %" PRIu64, ids[i]);
			fail(what, PAGESHARE_OP_OPEN_VM, fds[i]);
			goto out;
		}
	}
	snprintf(what, sizeof(what), "VM %" PRIu64, ids[0]);
	if (join) {
		ret = pageshare_get_policy(fds[0], &group, &old_flags);
		if (ret) {
			fail(what, PAGESHARE_OP_GET_POLICY, ret);
			ret = 1;
			goto out;
		}
		if (!group) {
			fprintf(stderr, "pageshare: %s is in no share group to join\n", what);
			ret = 1;
			goto out;
		}
		ret = old_flags == flags ? 0 : pageshare_set_policy(fds[0], group, flags, NULL);
	} else {
		ret = pageshare_new_group(fds[0], flags, &group);
	}
	if (ret) {
		fail(what, PAGESHARE_OP_SET_POLICY, ret);
		ret = 1;
		goto out;
	}
	for (i = 1; i < n; i++) {
		ret = pageshare_join_group(fds[i], group, flags);
		if (ret) {
			snprintf(what, sizeof(what), "VM %" PRIu64, ids[i]);
			fail(what, PAGESHARE_OP_SET_POLICY, ret);
			ret = 1;
			goto out;
		}
	}
	printf("share group %#" PRIx64 ":", group);
	for (i = 0; i < n; i++)
		printf(" %" PRIu64, ids[i]);
	printf("%s\n", flags & PAGESHARE_POLICY_NO_INTRA_VM ? " (no-intra-vm)" : "");
	ret = 0;
out:
	for (i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (ctl >= 0)
		close(ctl);
	free(ids);
	free(fds);
	return ret;
}

static void usage_audit(FILE *f)
{
	fprintf(f,
		"Usage: pageshare audit\n"
		"\n"
		"Check every invariant of every VM and frame (PAGESHARE_AUDIT), print the\n"
		"number of problems found, and exit 1 if there is any; the kernel log\n"
		"describes each. Sharing stops while it runs. Needs CAP_SYS_ADMIN.\n");
}

static int cmd_audit(int argc, char **argv)
{
	int ret, ctl;

	ret = help_or_error("audit", argc, argv, usage_audit);
	if (ret >= 0)
		return ret;
	ctl = open_control();
	if (ctl < 0)
		return 1;
	ret = pageshare_audit(ctl);
	close(ctl);
	if (ret < 0) {
		fail("audit", PAGESHARE_OP_AUDIT, ret);
		return 1;
	}
	printf("audit: %d problems\n", ret);
	return ret ? 1 : 0;
}

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
} commands[] = {
	{ "vms", cmd_vms },
	{ "stat", cmd_stat },
	{ "dedup", cmd_dedup },
	{ "group", cmd_group },
	{ "audit", cmd_audit },
};

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "device", required_argument, NULL, 'd' },
		{ "sysfs", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	size_t i;
	int c;

	/* '+': options after the command are the command's. */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			if (pageshare_set_device_path(optarg))
				return 1;
			break;
		case 's':
			if (pageshare_set_sysfs_root(optarg))
				return 1;
			break;
		case 'h':
			usage_main(stdout);
			return 0;
		case 'V':
			printf("pageshare %s (libpageshare %s, uapi version %d)\n",
			       PAGESHARE_TOOL_VERSION, PAGESHARE_LIB_VERSION,
			       PAGESHARE_API_VERSION);
			return 0;
		default:
			return bad_option(NULL, c, argv);
		}
	}
	if (optind >= argc)
		return usage_error("no command given");
	for (i = 0; i < ARRAY_SIZE(commands); i++)
		if (!strcmp(argv[optind], commands[i].name))
			return commands[i].run(argc - optind, argv + optind);
	return usage_error("unknown command '%s'", argv[optind]);
}
