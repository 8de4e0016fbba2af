#!/usr/bin/python3
"""s3_sigv4_proxy.py: a test proxy in front of s3rver that checks the AWS SigV4 signature of
every request with botocore (an implementation independent of curl's) and refuses a wrong one
with S3's 403 SignatureDoesNotMatch, as real S3 does; accepted requests are forwarded.
s3rver writes an object in place, so concurrent PUTs of one key can leave a mix of both; S3
replaces objects atomically, so the proxy runs the requests on one object one at a time.

Usage: s3_sigv4_proxy.py UPSTREAM_PORT ACCESS_KEY SECRET REGION LOG_FILE
Prints "PORT <n>" once it listens on 127.0.0.1 (port chosen by the kernel). Appends one line
"<kind> ok|rejected <reason>" per request to LOG_FILE, where kind is put, get, head, delete,
list, create-multipart, upload-part, complete-multipart or abort-multipart."""

import hashlib
import http.client
import http.server
import re
import sys
import threading
import urllib.parse

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

UPSTREAM, ACCESS_KEY, SECRET, REGION, LOG = (int(sys.argv[1]), sys.argv[2], sys.argv[3],
                                             sys.argv[4], sys.argv[5])
LOG_LOCK = threading.Lock()
OBJECT_LOCKS = {}
OBJECT_LOCKS_LOCK = threading.Lock()
AUTH_RE = re.compile(r'^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/s3/aws4_request, '
                     r'SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$')
UNRESERVED = '-_.~'


def kind_of(method, query):
    q = urllib.parse.parse_qs(query, keep_blank_values=True)
    if method == 'POST':
        return 'create-multipart' if 'uploads' in q else 'complete-multipart'
    if method == 'PUT':
        return 'upload-part' if 'partNumber' in q else 'put'
    if method == 'DELETE':
        return 'abort-multipart' if 'uploadId' in q else 'delete'
    if method == 'GET':
        return 'list' if 'list-type' in q else 'get'
    return method.lower()


def object_lock(path):
    """The lock of the object at path (the URL path without its query)."""
    with OBJECT_LOCKS_LOCK:
        return OBJECT_LOCKS.setdefault(urllib.parse.urlsplit(path).path, threading.Lock())


def check(method, path, headers, body):
    """Returns None if the request is signed right, else the reason."""
    m = AUTH_RE.match(headers.get('Authorization', ''))
    if m is None:
        return 'malformed Authorization header'
    key, day, region, signed, signature = m.groups()
    if key != ACCESS_KEY or region != REGION:
        return 'wrong access key id or region'
    names = signed.split(';')
    for need in ('host', 'x-amz-date', 'x-amz-content-sha256'):
        if need not in names:
            return 'header %s is not signed' % need
    if names != sorted(names):
        return 'signed headers not sorted'
    amz_date = headers.get('X-Amz-Date', '')
    if not amz_date.startswith(day):
        return 'credential date differs from X-Amz-Date'
    url = urllib.parse.urlsplit(path)
    # S3 needs the path and the query encoded exactly once, upper-case hex
    if url.path != urllib.parse.quote(urllib.parse.unquote(url.path), safe='/' + UNRESERVED):
        return 'path not canonically encoded'
    for pair in url.query.split('&') if url.query else []:
        for part in pair.partition('=')[::2]:
            if part != urllib.parse.quote(urllib.parse.unquote(part), safe=UNRESERVED):
                return 'query not canonically encoded'
    sha = headers.get('x-amz-content-sha256')
    if sha != 'UNSIGNED-PAYLOAD' and sha != hashlib.sha256(body).hexdigest():
        return 'x-amz-content-sha256 does not match the body'
    req = AWSRequest(method=method, url='http://' + headers['Host'] + path, data=body,
                     headers={n: ' '.join(headers.get_all(n)) for n in names})
    auth = S3SigV4Auth(Credentials(ACCESS_KEY, SECRET), 's3', REGION)
    req.context['timestamp'] = amz_date
    canonical = auth.canonical_request(req)
    want = auth.signature(auth.string_to_sign(req, canonical), req)
    if want != signature:
        return 'signature mismatch'
    return None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, *args):
        pass

    def send_error_doc(self, status, code, message):
        doc = ('<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s'
               '</Message></Error>' % (code, message)).encode()
        self.send_response(status)
        self.send_header('Content-Type', 'application/xml')
        self.send_header('Content-Length', str(len(doc)))
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(doc)

    def handle_any(self):
        length = int(self.headers.get('Content-Length', '0'))
        body = self.rfile.read(length) if length > 0 else b''
        if len(body) < length:
            self.close_connection = True  # the client gave up sending the body
            return
        kind = kind_of(self.command, urllib.parse.urlsplit(self.path).query)
        reason = check(self.command, self.path, self.headers, body)
        with LOG_LOCK, open(LOG, 'a') as f:
            f.write('%s %s %s\n' % (kind, 'ok' if reason is None else 'rejected', reason or ''))
        if reason is not None:
            self.send_error_doc(403, 'SignatureDoesNotMatch', reason)
            return
        conn = http.client.HTTPConnection('127.0.0.1', UPSTREAM, timeout=60)
        fwd = {k: v for k, v in self.headers.items() if k.lower() not in ('expect', 'connection')}
        try:
            with object_lock(self.path):
                conn.request(self.command, self.path, body=body if length > 0 else None,
                             headers=fwd)
                resp = conn.getresponse()
                data = resp.read()
        except OSError:  # s3rver is down: answer as an unavailable S3 does
            self.send_error_doc(503, 'ServiceUnavailable', 'the upstream store is down')
            return
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ('connection', 'transfer-encoding', 'content-length', 'date'):
                self.send_header(k, v)
        if self.command == 'HEAD':
            self.send_header('Content-Length', resp.getheader('Content-Length', '0'))
        else:
            self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(data)
        conn.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


def main():
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    print('PORT %d' % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == '__main__':
    main()
