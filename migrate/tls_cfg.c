/* The migration channel's credentials policy, whatever the TLS library and
 * whether or not it is loaded (migrate/tls.c lives in ferry-tls.so): the
 * PSK file's format, reading a secret file, and which --tls-* / --insecure
 * combinations both ends accept.  In the core, so that a VM without
 * credentials needs no module to be refused or warned. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ferry/log.h"
#include "ferry/mig_tls.h"
#include "ferry/util.h"

#define MIG_TLS_FILE_MAX (64 * 1024)

/* ---- the PSK file (unit-tested everywhere) ---- */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int mig_tls_parse_psk(const char *text, size_t len, char ident[MIG_TLS_IDENT_MAX + 1],
		      uint8_t key[MIG_TLS_KEY_MAX], size_t *key_len, struct ferr *e)
{
	const char *p = text, *end = text + len;
	unsigned int lineno = 0, entries = 0;

	for (; p < end; ) {
		const char *eol = memchr(p, '\n', end - p), *colon, *hex, *le;
		size_t ilen, hlen;

		if (!eol)
			eol = end;
		lineno++;
		le = eol;
		while (le > p && (le[-1] == '\r' || le[-1] == ' ' || le[-1] == '\t'))
			le--;
		if (le == p) {
			p = eol + 1;
			continue;
		}
		if (++entries > 1)
			return ferr_set(e, -EINVAL, "line %u: a second key; the file must hold one identity:hexkey line",
					lineno);
		colon = memchr(p, ':', le - p);
		if (!colon)
			return ferr_set(e, -EINVAL, "line %u: not identity:hexkey (make it with psktool -u NAME -p FILE)",
					lineno);
		ilen = colon - p;
		if (ilen == 0 || ilen > MIG_TLS_IDENT_MAX)
			return ferr_set(e, -EINVAL, "line %u: the identity must have 1 to %d characters",
					lineno, MIG_TLS_IDENT_MAX);
		for (size_t i = 0; i < ilen; i++)
			if ((unsigned char)p[i] < 0x21 || (unsigned char)p[i] > 0x7e)
				return ferr_set(e, -EINVAL, "line %u: the identity has a character that is not printable ASCII",
						lineno);
		hex = colon + 1;
		hlen = le - hex;
		if (hlen % 2 || hlen < 2 * MIG_TLS_KEY_MIN || hlen > 2 * MIG_TLS_KEY_MAX)
			return ferr_set(e, -EINVAL, "line %u: the key must be %d to %d bytes in hex (an even number of digits); got %zu digits",
					lineno, MIG_TLS_KEY_MIN, MIG_TLS_KEY_MAX, hlen);
		for (size_t i = 0; i < hlen; i += 2) {
			int hi = hexval(hex[i]), lo = hexval(hex[i + 1]);

			if (hi < 0 || lo < 0)
				return ferr_set(e, -EINVAL, "line %u: the key is not hexadecimal", lineno);
			key[i / 2] = hi << 4 | lo;
		}
		memcpy(ident, p, ilen);
		ident[ilen] = '\0';
		*key_len = hlen / 2;
		p = eol + 1;
	}
	if (!entries)
		return ferr_set(e, -EINVAL, "no identity:hexkey line (make one with psktool -u NAME -p FILE)");
	return 0;
}

/* Secrets stay private: refuse what group or others may read. */
int mig_tls_read_secret(const char *flag, const char *path, void **buf, size_t *len,
			struct ferr *e)
{
	struct stat st;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ferr_errno(e, -errno, "%s %s: cannot open", flag, path);
	if (fstat(fd, &st) < 0) {
		ret = ferr_errno(e, -errno, "%s %s: cannot stat", flag, path);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = ferr_set(e, -EINVAL, "%s %s: not a regular file", flag, path);
		goto out;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		ret = ferr_set(e, -EPERM, "%s %s: mode %03o lets group or others at the secret; chmod 600 %s",
			       flag, path, (unsigned int)(st.st_mode & 0777), path);
		goto out;
	}
	ret = read_file(path, MIG_TLS_FILE_MAX, buf, len);
	if (ret < 0)
		ferr_errno(e, ret, "%s %s: cannot read (at most %d bytes)", flag, path,
			   MIG_TLS_FILE_MAX);
out:
	close(fd);
	return ret < 0 ? ret : 0;
}

/* Both ends' policy on credentials, whatever the TLS library. */
int mig_tls_check_cfg(const struct vm_config *cfg, bool *any, struct ferr *e)
{
	bool x509 = cfg->tls_cert || cfg->tls_key || cfg->tls_ca;

	if (cfg->tls_psk && x509)
		return ferr_set(e, -EINVAL, "--tls-psk and --tls-cert/--tls-key/--tls-ca exclude each other; give one kind");
	if (x509 && !(cfg->tls_cert && cfg->tls_key && cfg->tls_ca))
		return ferr_set(e, -EINVAL, "--tls-cert, --tls-key and --tls-ca go together (this end's certificate, its key, and the CA that signs both ends)");
	*any = cfg->tls_psk || x509;
	if (!*any && cfg->incoming && !strncmp(cfg->incoming, "tcp:", 4)) {
		if (!cfg->insecure)
			return ferr_set(e, -EPERM, "--incoming %s: no credentials for the migration channel; give --tls-psk FILE or --tls-cert/--tls-key/--tls-ca, or --insecure to accept an unauthenticated migration",
					cfg->incoming);
		log_warn("--insecure: migrations arrive in plain TCP on %s; anyone who reaches that port can inject a VM",
			 cfg->incoming);
	}
	return 0;
}
