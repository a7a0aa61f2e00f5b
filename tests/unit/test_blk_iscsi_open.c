/* virtio/blk_iscsi_open.c: what a target answers to INQUIRY, READ
 * CAPACITY(16), the VPD pages (and, in blk_iscsi_pr.c, READ RESERVATION)
 * is unpacked from a zero-padded copy (isc_unmarshall), so a
 * short (or empty) answer is never read past its end by libiscsi (found by
 * tests/fuzz/fuzz_parsers.c: a 1-byte INQUIRY answer). */
#include <stdlib.h>

#include "config.h"
#include "tap.h"

#ifdef HAVE_LIBISCSI
#include "../../virtio/blk_iscsi.h"

/* A task as libiscsi hands it back: data-in exactly as long as sent. */
static struct scsi_task *answered(struct scsi_task *t, const void *data, int len)
{
	CHECK(t != NULL);
	t->datain.data = len ? malloc(len) : NULL;
	if (len)
		memcpy(t->datain.data, data, len);
	t->datain.size = len;
	return t;
}

TEST(inquiry_short)
{
	static const uint8_t one[1] = { 0x00 };        /* connected, disk */
	struct scsi_task *t = answered(scsi_cdb_inquiry(0, 0, 255), one, 1);
	struct scsi_inquiry_standard *inq = isc_unmarshall(t, ISC_INQUIRY_MIN);

	CHECK(inq != NULL);
	CHECK_EQ(t->datain.size, ISC_INQUIRY_MIN);
	if (inq) {
		CHECK_EQ(inq->qualifier, SCSI_INQUIRY_PERIPHERAL_QUALIFIER_CONNECTED);
		CHECK_EQ(inq->device_type, SCSI_INQUIRY_PERIPHERAL_DEVICE_TYPE_DIRECT_ACCESS);
		CHECK_EQ(inq->clocking, 0);             /* byte 56: not sent, zero */
	}
	scsi_free_scsi_task(t);
}

TEST(inquiry_empty)
{
	struct scsi_task *t = answered(scsi_cdb_inquiry(0, 0, 255), NULL, 0);
	struct scsi_inquiry_standard *inq = isc_unmarshall(t, ISC_INQUIRY_MIN);

	CHECK(inq != NULL);
	CHECK_EQ(t->datain.size, ISC_INQUIRY_MIN);
	scsi_free_scsi_task(t);
}

TEST(readcap16_short)
{
	/* LBA 0x1fff, 4096-byte blocks, and nothing after. */
	static const uint8_t d[12] = { 0, 0, 0, 0, 0, 0, 0x1f, 0xff, 0, 0, 0x10, 0 };
	struct scsi_task *t = answered(scsi_cdb_readcapacity16(), d, sizeof(d));
	struct scsi_readcapacity16 *rc = isc_unmarshall(t, ISC_READCAP16_MIN);

	CHECK(rc != NULL);
	if (rc) {
		CHECK_EQ(rc->returned_lba, 0x1fff);
		CHECK_EQ(rc->block_length, 4096);
		CHECK_EQ(rc->lbpme, 0);
	}
	scsi_free_scsi_task(t);
}

TEST(vpd_block_limits_short)
{
	static const uint8_t d[4] = { 0, SCSI_INQUIRY_PAGECODE_BLOCK_LIMITS, 0, 0x3c };
	struct scsi_task *t = answered(scsi_cdb_inquiry(1, SCSI_INQUIRY_PAGECODE_BLOCK_LIMITS, 255),
				       d, sizeof(d));
	struct scsi_inquiry_block_limits *bl = isc_unmarshall(t, ISC_VPD_MIN);

	CHECK(bl != NULL);
	if (bl) {
		CHECK_EQ(bl->max_xfer_len, 0);          /* 0: no limit */
		CHECK_EQ(bl->max_unmap, 0);
		CHECK_EQ(bl->max_ws_len, 0);
	}
	scsi_free_scsi_task(t);
}

/* virtio/blk_iscsi_pr.c's READ RESERVATION: "reserved" with its key and
 * type cut off reads as key 0, type 0, never past the answer. */
TEST(read_reservation_short)
{
	static const uint8_t d[8] = { 0, 0, 0, 1, 0, 0, 0, 0x10 };
	struct scsi_task *t = answered(scsi_cdb_persistent_reserve_in(
					       SCSI_PERSISTENT_RESERVE_READ_RESERVATION, 255),
				       d, sizeof(d));
	struct scsi_persistent_reserve_in_read_reservation *rr = isc_unmarshall(t, ISC_PR_RESV_MIN);

	CHECK(rr != NULL);
	CHECK_EQ(t->datain.size, ISC_PR_RESV_MIN);
	if (rr) {
		CHECK_EQ(rr->reserved, 1);
		CHECK_EQ(rr->reservation_key, 0);
		CHECK_EQ(rr->pr_type, 0);
	}
	scsi_free_scsi_task(t);
}

TEST(full_answer_untouched)
{
	uint8_t d[128] = { 0 };
	struct scsi_task *t;
	void *data;

	d[4] = sizeof(d) - 5;
	memcpy(d + 8, "FERRYTST", 8);
	t = answered(scsi_cdb_inquiry(0, 0, 255), d, sizeof(d));
	data = t->datain.data;
	CHECK(isc_unmarshall(t, ISC_INQUIRY_MIN) != NULL);
	CHECK(t->datain.data == data);                  /* no copy */
	CHECK_EQ(t->datain.size, sizeof(d));
	scsi_free_scsi_task(t);
}

int main(void)
{
	RUN(inquiry_short);
	RUN(inquiry_empty);
	RUN(readcap16_short);
	RUN(vpd_block_limits_short);
	RUN(read_reservation_short);
	RUN(full_answer_untouched);
	return tap_done();
}
#else
TAP_SKIP_ALL("built without libiscsi")
#endif
