/* Host-side reader for tests/integration/iscsi.sh: copies LEN bytes at
 * OFFSET of an iSCSI LUN to a file through libiscsi, so that the test checks
 * what the target holds, not what ferry says it wrote.
 * Usage: iscsi_check iscsi://HOST:PORT/IQN/LUN OFFSET LEN OUTFILE
 *        iscsi_check iscsi://HOST:PORT/IQN/LUN pr
 * The second prints the LUN's SCSI-3 persistent reservation (PERSISTENT
 * RESERVE IN: READ RESERVATION, READ KEYS) as "reservation: none" or
 * "reservation: key=0x... type=N" (1: WRITE EXCLUSIVE), then "keys: ...". */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#define CHUNK (64 * 1024)

static int show_pr(struct iscsi_context *ctx, int lun)
{
	struct scsi_persistent_reserve_in_read_reservation *rr;
	struct scsi_persistent_reserve_in_read_keys *rk;
	struct scsi_task *t;

	t = iscsi_persistent_reserve_in_sync(ctx, lun, SCSI_PERSISTENT_RESERVE_READ_RESERVATION, 255);
	if (!t || t->status != SCSI_STATUS_GOOD || !(rr = scsi_datain_unmarshall(t))) {
		fprintf(stderr, "iscsi_check: READ RESERVATION failed: %s\n", iscsi_get_error(ctx));
		return 1;
	}
	if (rr->reserved)
		printf("reservation: key=0x%016" PRIx64 " type=%d\n", rr->reservation_key, rr->pr_type);
	else
		printf("reservation: none\n");
	scsi_free_scsi_task(t);
	t = iscsi_persistent_reserve_in_sync(ctx, lun, SCSI_PERSISTENT_RESERVE_READ_KEYS, 4096);
	if (!t || t->status != SCSI_STATUS_GOOD || !(rk = scsi_datain_unmarshall(t))) {
		fprintf(stderr, "iscsi_check: READ KEYS failed: %s\n", iscsi_get_error(ctx));
		return 1;
	}
	printf("keys:");
	for (int i = 0; i < rk->num_keys; i++)
		printf(" 0x%016" PRIx64, rk->keys[i]);
	printf("\n");
	scsi_free_scsi_task(t);
	return 0;
}

int main(int argc, char **argv)
{
	struct iscsi_context *ctx;
	struct iscsi_url *url;
	struct scsi_readcapacity16 *rc;
	struct scsi_task *t;
	uint64_t off, len, done;
	uint32_t bs;
	FILE *out;

	if (argc != 5 && !(argc == 3 && !strcmp(argv[2], "pr"))) {
		fprintf(stderr, "usage: %s iscsi://HOST:PORT/IQN/LUN OFFSET LEN OUTFILE | pr\n", argv[0]);
		return 2;
	}
	off = argc == 5 ? strtoull(argv[2], NULL, 0) : 0;
	len = argc == 5 ? strtoull(argv[3], NULL, 0) : 0;
	ctx = iscsi_create_context("iqn.2026-11.org.ferry:iscsi-check");
	if (!ctx)
		return 1;
	url = iscsi_parse_full_url(ctx, argv[1]);
	if (!url) {
		fprintf(stderr, "iscsi_check: bad URL %s: %s\n", argv[1], iscsi_get_error(ctx));
		return 1;
	}
	iscsi_set_targetname(ctx, url->target);
	iscsi_set_session_type(ctx, ISCSI_SESSION_NORMAL);
	iscsi_set_timeout(ctx, 20);
	if (iscsi_full_connect_sync(ctx, url->portal, url->lun)) {
		fprintf(stderr, "iscsi_check: cannot log in: %s\n", iscsi_get_error(ctx));
		return 1;
	}
	if (argc == 3) {
		int ret = show_pr(ctx, url->lun);

		iscsi_logout_sync(ctx);
		return ret;
	}
	t = iscsi_readcapacity16_sync(ctx, url->lun);
	if (!t || t->status != SCSI_STATUS_GOOD || !(rc = scsi_datain_unmarshall(t))) {
		fprintf(stderr, "iscsi_check: READ CAPACITY(16) failed: %s\n", iscsi_get_error(ctx));
		return 1;
	}
	bs = rc->block_length;
	scsi_free_scsi_task(t);
	if (off % bs || len % bs) {
		fprintf(stderr, "iscsi_check: offset and length must be multiples of %u\n", bs);
		return 2;
	}
	out = fopen(argv[4], "wb");
	if (!out) {
		perror(argv[4]);
		return 1;
	}
	for (done = 0; done < len;) {
		uint32_t n = len - done < CHUNK ? (uint32_t)(len - done) : CHUNK;

		t = iscsi_read16_sync(ctx, url->lun, (off + done) / bs, n, bs, 0, 0, 0, 0, 0);
		if (!t || t->status != SCSI_STATUS_GOOD || t->datain.size != (int)n) {
			fprintf(stderr, "iscsi_check: READ(16) at %" PRIu64 " failed: %s\n", off + done,
				iscsi_get_error(ctx));
			return 1;
		}
		fwrite(t->datain.data, 1, n, out);
		scsi_free_scsi_task(t);
		done += n;
	}
	if (fclose(out)) {
		perror(argv[4]);
		return 1;
	}
	iscsi_logout_sync(ctx);
	iscsi_destroy_context(ctx);
	iscsi_destroy_url(url);
	return 0;
}
