/* metrics_format(): the Prometheus text of a stats object. */
#include <stdlib.h>

#include <json-c/json.h>

#include "ferry/metrics.h"
#include "tap.h"

static const char stats_json[] =
	"{\"state\":\"paused\",\"uptime_s\":12.5,\"memory_bytes\":268435456,"
	"\"rss_bytes\":4096,"
	"\"vcpus\":[{\"id\":0,\"exits\":{\"io\":10,\"hlt\":2},\"guest_ns\":1500000000,\"vmm_ns\":1000},"
	"           {\"id\":1,\"exits\":{\"io\":3},\"guest_ns\":0,\"vmm_ns\":0}],"
	"\"devices\":{\"uart0\":{\"tx_bytes\":5,\"rx_bytes\":6}},"
	"\"buses\":{\"pio\":{\"unhandled\":7}}}";

TEST(format)
{
	struct json_object *stats = json_tokener_parse(stats_json);
	size_t len = 0;
	char *t = metrics_format(stats, "vm\"1", &len);

	CHECK(t && len == strlen(t));
	if (!t)
		return;
	CHECK(strstr(t, "ferry_info{name=\"vm\\\"1\",version="));
	CHECK(strstr(t, "ferry_state{state=\"paused\"} 1\n"));
	CHECK(strstr(t, "ferry_state{state=\"running\"} 0\n"));
	CHECK(strstr(t, "ferry_uptime_seconds 12.500\n"));
	CHECK(strstr(t, "ferry_memory_bytes 268435456\n"));
	CHECK(strstr(t, "ferry_rss_bytes 4096\n"));
	CHECK(strstr(t, "ferry_vcpu_exits_total{vcpu=\"0\",reason=\"io\"} 10\n"));
	CHECK(strstr(t, "ferry_vcpu_exits_total{vcpu=\"0\",reason=\"hlt\"} 2\n"));
	CHECK(strstr(t, "ferry_vcpu_exits_total{vcpu=\"1\",reason=\"io\"} 3\n"));
	CHECK(strstr(t, "ferry_vcpu_guest_seconds_total{vcpu=\"0\"} 1.500000000\n"));
	CHECK(strstr(t, "ferry_device_tx_bytes_total{device=\"uart0\"} 5\n"));
	CHECK(strstr(t, "ferry_device_rx_bytes_total{device=\"uart0\"} 6\n"));
	CHECK(strstr(t, "ferry_bus_unhandled_total{bus=\"pio\"} 7\n"));
	/* One TYPE line per metric, before its samples. */
	CHECK(strstr(t, "# TYPE ferry_vcpu_exits_total counter\n"));
	CHECK(!strstr(strstr(t, "# TYPE ferry_vcpu_exits_total") + 1,
		      "# TYPE ferry_vcpu_exits_total"));
	CHECK(strstr(t, "# TYPE ferry_vcpu_exits_total") < strstr(t, "ferry_vcpu_exits_total{"));
	CHECK(t[len - 1] == '\n');
	free(t);
	json_object_put(stats);
}

TEST(empty)
{
	struct json_object *stats = json_object_new_object();
	char *t = metrics_format(stats, "x", NULL);

	/* Missing members: still a valid exposition, no vCPU samples. */
	CHECK(t && strstr(t, "ferry_state{state=\"running\"} 0"));
	CHECK(t && !strstr(t, "ferry_vcpu_exits_total{"));
	free(t);
	json_object_put(stats);
}

int main(void)
{
	RUN(format);
	RUN(empty);
	return tap_done();
}
