/* sd_opt.c: the option table of every configuration key and the value parsers and formatters.
 *
 * DESIGN: the table is one static const array sorted by key (a unit test checks the order), so
 * lookups are a binary search and nothing here has state: every function is pure, thread-safe
 * and allocation-free except sd_opt_suggest (a temporary edit-distance row). Parsers never log;
 * they return SD_EINVAL and, for sd_opt_parse, a message the caller reports once. */
#include "config/sd_opt.h"
#include "core/sd_alloc.h"
#include "core/sd_buf.h"
#include "core/sd_error.h"

#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SD_KB(n) ((int64_t)(n)*1024)
#define SD_MB(n) ((int64_t)(n)*1024 * 1024)
#define SD_GB(n) ((int64_t)(n)*1024 * 1024 * 1024)
#define SD_MS(n) ((int64_t)(n))
#define SD_SEC(n) ((int64_t)(n)*1000)
#define SD_MIN(n) ((int64_t)(n)*60 * 1000)
#define SD_HOUR(n) ((int64_t)(n)*3600 * 1000)

/* Longest value echoed back in an error message. */
#define SD_OPT_ECHO_MAX 200

static const char *const sd_enum_encryption[] = {"none", "aes", "gcp", "aws", "azure", NULL};
static const char *const sd_enum_encoder[] = {"csv", NULL};
static const char *const sd_enum_compression[] = {"none", "gzip", NULL};
static const char *const sd_enum_gzip_impl[] = {"standard", "fast", "parallel", NULL};
static const char *const sd_enum_sync_mode[] = {"disk", "cache", NULL};
/* The reference also knows "kcp", disabled there and never implemented here. */
static const char *const sd_enum_transport[] = {"tcp", NULL};
static const char *const sd_enum_balancer[] = {"rand", "roundRobin", NULL};
static const char *const sd_enum_state_backend[] = {"embedded", "etcd", NULL};
static const char *const sd_enum_staging_backend[] = {"local", "s3", NULL};
static const char *const sd_enum_tables_backend[] = {"sqlite", "postgres", "keboola", NULL};

#define SD_OPT_P (SD_OPT_PROTECTED | SD_OPT_ENTITY)

/* Every key, sorted by key in strcmp order (uppercase sorts before lowercase). Keys of reference
 * §4.1, then DESIGN.md §2 (dataDir, state.*, staging.*, tables.*, auth.adminToken, publicUrl,
 * storage.retry.*). Ranges are the reference's; where it names none, a sane one is chosen. */
static const struct sd_opt sd_opts[] = {
    {"api.kubernetesTokenPath", SD_OPT_STRING, "", 0, 0, NULL, 0,
     "Path of a Kubernetes service-account token file (file path; empty = none)."},
    {"api.listen", SD_OPT_STRING, "0.0.0.0:8000", 0, 0, NULL, 0,
     "Listen address of the configuration API (host:port)."},
    {"api.publicUrl", SD_OPT_STRING, "", 0, 0, NULL, 0,
     "Public URL of the configuration API used in task URLs (absolute URL; empty = the bound "
     "address)."},
    {"api.task.cleanupEnabled", SD_OPT_BOOL, "true", 0, 0, NULL, 0,
     "Whether finished tasks are deleted periodically (true or false)."},
    {"api.task.cleanupInterval", SD_OPT_DURATION, "1h", SD_SEC(1), SD_HOUR(24), NULL, 0,
     "Interval between cleanups of finished tasks (duration)."},
    {"api.task.ttlSeconds", SD_OPT_INT, "15", 1, 300, NULL, 0,
     "Time-to-live of the lock session of a running task (seconds)."},
    {"auth.adminToken", SD_OPT_STRING, "", 0, 0, NULL, SD_OPT_SECRET,
     "Master admin token for project 1 (text of at least 16 characters; empty = generated in "
     "standalone)."},
    {"dataDir", SD_OPT_STRING, "./data", 0, 0, NULL, 0,
     "Directory holding every local file unless configured otherwise (directory path)."},
    {"datadog.debug", SD_OPT_BOOL, "false", 0, 0, NULL, 0,
     "Whether Datadog debug logs are written (true or false; accepted for compatibility)."},
    {"datadog.enabled", SD_OPT_BOOL, "true", 0, 0, NULL, 0,
     "Whether the Datadog integration is enabled (true or false; accepted for compatibility)."},
    {"datadog.profiler.block", SD_OPT_BOOL, "false", 0, 0, NULL, 0,
     "Whether the Datadog profiler samples blocking (true or false; accepted for compatibility)."},
    {"datadog.profiler.cpu", SD_OPT_BOOL, "true", 0, 0, NULL, 0,
     "Whether the Datadog profiler samples CPU (true or false; accepted for compatibility)."},
    {"datadog.profiler.enabled", SD_OPT_BOOL, "false", 0, 0, NULL, 0,
     "Whether the Datadog profiler runs (true or false; accepted for compatibility)."},
    {"datadog.profiler.goroutine", SD_OPT_BOOL, "false", 0, 0, NULL, 0,
     "Whether the Datadog profiler samples goroutines (true or false; accepted for "
     "compatibility)."},
    {"datadog.profiler.memory", SD_OPT_BOOL, "true", 0, 0, NULL, 0,
     "Whether the Datadog profiler samples memory (true or false; accepted for compatibility)."},
    {"datadog.profiler.mutex", SD_OPT_BOOL, "false", 0, 0, NULL, 0,
     "Whether the Datadog profiler samples lock contention (true or false; accepted for "
     "compatibility)."},
    {"debugHTTPClient", SD_OPT_BOOL, "false", 0, 0, NULL, 0,
     "Whether outgoing HTTP client requests are logged at debug level (true or false)."},
    {"debugLog", SD_OPT_BOOL, "false", 0, 0, NULL, 0,
     "Whether debug-level log messages are written (true or false)."},
    {"distribution.eventsGroupInterval", SD_OPT_DURATION, "5s", SD_MS(0), SD_SEC(30), NULL, 0,
     "Interval over which node topology changes are grouped (duration)."},
    {"distribution.grantTimeout", SD_OPT_DURATION, "5s", SD_SEC(1), SD_MIN(1), NULL, 0,
     "Timeout of granting work ownership to a node (duration)."},
    {"distribution.shutdownTimeout", SD_OPT_DURATION, "10s", SD_MS(100), SD_MIN(10), NULL, 0,
     "Timeout of leaving the distribution groups at shutdown (duration)."},
    {"distribution.startupTimeout", SD_OPT_DURATION, "1m", SD_SEC(1), SD_MIN(10), NULL, 0,
     "Timeout of joining the distribution groups at start-up (duration)."},
    {"distribution.ttlSeconds", SD_OPT_INT, "15", 1, 30, NULL, 0,
     "Time-to-live of a node's membership lease (seconds)."},
    {"encryption.aes.secretKey", SD_OPT_STRING, "", 0, 0, NULL, SD_OPT_SECRET,
     "AES-256 key used when encryption.provider is aes (exactly 32 bytes; secret)."},
    {"encryption.aws.kmsKeyId", SD_OPT_STRING, "", 0, 0, NULL, 0,
     "AWS KMS key id used when encryption.provider is aws (key id)."},
    {"encryption.aws.region", SD_OPT_STRING, "", 0, 0, NULL, 0,
     "AWS region of the KMS key used when encryption.provider is aws (region name)."},
    {"encryption.azure.keyName", SD_OPT_STRING, "", 0, 0, NULL, 0,
     "Azure Key Vault key name used when encryption.provider is azure (key name)."},
    {"encryption.azure.keyVaultUrl", SD_OPT_STRING, "", 0, 0, NULL, 0,
     "Azure Key Vault URL used when encryption.provider is azure (URL)."},
    {"encryption.gcp.kmsKeyId", SD_OPT_STRING, "", 0, 0, NULL, 0,
     "Google Cloud KMS key id used when encryption.provider is gcp (key id)."},
    {"encryption.provider", SD_OPT_ENUM, "none", 0, 0, sd_enum_encryption, 0,
     "Encryption of tokens and credentials in the state store (none, aes, gcp, aws or azure)."},
    {"etcd.connectTimeout", SD_OPT_DURATION, "30s", SD_MS(100), SD_MIN(10), NULL, 0,
     "Timeout of connecting to an etcd endpoint and of one etcd request (duration)."},
    {"etcd.debugLog", SD_OPT_BOOL, "false", 0, 0, NULL, 0,
     "Whether etcd client operations are logged at debug level (true or false)."},
    {"etcd.endpoint", SD_OPT_STRING, "", 0, 0, NULL, 0,
     "etcd v3 endpoints (host:port or URL; several separated by commas, tried in turn when one "
     "cannot be reached or has no leader; empty = no etcd)."},
    {"etcd.keepAliveInterval", SD_OPT_DURATION, "10s", SD_MS(100), SD_MIN(10), NULL, 0,
     "Interval between TCP keep-alive probes of etcd connections (duration)."},
    {"etcd.keepAliveTimeout", SD_OPT_DURATION, "5s", SD_MS(100), SD_MIN(10), NULL, 0,
     "A watch stream silent for keepAliveInterval plus this long is reopened (duration)."},
    {"etcd.namespace", SD_OPT_STRING, "stream/", 0, 0, NULL, 0,
     "Prefix of every etcd key written by the service (key prefix)."},
    {"etcd.password", SD_OPT_STRING, "", 0, 0, NULL, SD_OPT_SECRET,
     "etcd password (text; secret)."},
    {"etcd.username", SD_OPT_STRING, "", 0, 0, NULL, 0,
     "etcd user name (text; empty = no authentication)."},
    {"hostname", SD_OPT_STRING, "127.0.0.1", 0, 0, NULL, 0,
     "Address other nodes use to reach this node (host name or IP address)."},
    {"metrics.listen", SD_OPT_STRING, "0.0.0.0:9000", 0, 0, NULL, 0,
     "Listen address of the Prometheus metrics endpoint (host:port)."},
    {"nodeID", SD_OPT_STRING, "standalone", 0, 0, NULL, 0,
     "Unique name of this node in the cluster (text; required in distributed mode)."},
    {"pprof.enabled", SD_OPT_BOOL, "false", 0, 0, NULL, 0,
     "Whether the profiling server is started (true or false)."},
    {"pprof.listen", SD_OPT_STRING, "0.0.0.0:4000", 0, 0, NULL, 0,
     "Listen address of the profiling server (host:port)."},
    {"sink.table.keboola.eventSendTimeout", SD_OPT_DURATION, "30s", SD_SEC(1), SD_MIN(10), NULL, 0,
     "Timeout of sending one Storage API event (duration)."},
    {"sink.table.keboola.jobLimit", SD_OPT_INT, "2", 1, 100, NULL, 0,
     "Maximum number of running import jobs per sink before throttling (count)."},
    {"source.http.idleTimeout", SD_OPT_DURATION, "30s", SD_SEC(1), SD_MIN(10), NULL, 0,
     "Maximum idle time of a keep-alive connection between two requests; then it is closed "
     "(duration)."},
    {"source.http.listen", SD_OPT_STRING, "0.0.0.0:7000", 0, 0, NULL, 0,
     "Listen address of the data import endpoint (host:port)."},
    {"source.http.loops", SD_OPT_INT, "0", 0, 64, NULL, 0,
     "Event loops of the data endpoint: threads that each serve a share of the connections, "
     "handed to the loop with the fewest (count; 0 = one per CPU the process may run on, at most "
     "16)."},
    {"source.http.maxConnections", SD_OPT_INT, "200000", 100, 1000000, NULL, 0,
     "Maximum number of concurrent client connections; at the limit new connections wait in the "
     "listen backlog. Never more than three quarters of the open-file limit (RLIMIT_NOFILE, "
     "raised to its hard limit at start), so that the API, metrics and files keep descriptors "
     "(count)."},
    {"source.http.maxRequestBodySize", SD_OPT_SIZE, "1MB", 100, SD_MB(4), NULL, 0,
     "Maximum size of one request body (bytes)."},
    {"source.http.publicUrl", SD_OPT_STRING, "", 0, 0, NULL, 0,
     "Public URL of the data import endpoint used in source URLs (absolute URL; empty = the bound "
     "address)."},
    {"source.http.readBufferSize", SD_OPT_SIZE, "16KB", SD_KB(1), SD_MB(1), NULL, 0,
     "Maximum size of all request headers together (bytes)."},
    {"source.http.readHeaderTimeout", SD_OPT_DURATION, "10s", SD_MS(100), SD_MIN(1), NULL, 0,
     "Maximum time from a new connection, or from the first byte of a request on a kept-alive "
     "one, until its request head (request line and headers) is complete; then the connection "
     "is closed without a response; at most source.http.requestTimeout (duration)."},
    {"source.http.requestTimeout", SD_OPT_DURATION, "30s", SD_SEC(1), SD_MIN(1), NULL, 0,
     "Maximum time to handle one request; reading its head and body from the first byte is "
     "bounded by it as well (duration)."},
    {"source.http.shutdownTimeout", SD_OPT_DURATION, "30s", SD_SEC(1), SD_MIN(10), NULL, 0,
     "Maximum time the data endpoint waits at shutdown (SIGTERM, SIGINT) for the requests in "
     "flight to be answered; then it closes their connections and exits (duration)."},
    {"source.http.templateQueueSize", SD_OPT_INT, "64", 1, 100000, NULL, 0,
     "Records and test requests that may wait for a template worker; more are answered 503 "
     "(count)."},
    {"source.http.templateWorkers", SD_OPT_INT, "0", 0, 8, NULL, 0,
     "Threads that evaluate templates, away from the event loops (count; 0 = one per core, at "
     "most 8)."},
    {"source.http.writeBufferSize", SD_OPT_SIZE, "4KB", SD_KB(1), SD_MB(1), NULL, 0,
     "Kernel send buffer (SO_SNDBUF) of each data endpoint connection, which holds its responses "
     "until the client reads them; Linux doubles the value for its bookkeeping (bytes)."},
    {"staging.backend", SD_OPT_ENUM, "local", 0, 0, sd_enum_staging_backend, 0,
     "Staging storage for uploaded slices (local or s3)."},
    {"staging.local.path", SD_OPT_STRING, "", 0, 0, NULL, 0,
     "Directory of the local staging storage (directory path; empty = <dataDir>/staging)."},
    {"staging.s3.accessKeyId", SD_OPT_STRING, "", 0, 0, NULL, 0,
     "Access key id of the S3 staging storage (text; required when staging.backend is s3)."},
    {"staging.s3.bucket", SD_OPT_STRING, "", 0, 0, NULL, 0,
     "Existing bucket of the S3 staging storage (bucket name; required when staging.backend is "
     "s3)."},
    {"staging.s3.endpoint", SD_OPT_STRING, "", 0, 0, NULL, 0,
     "Endpoint of the S3-compatible staging storage (URL without a path, e.g. "
     "http://127.0.0.1:4568 or https://s3.eu-central-1.amazonaws.com)."},
    {"staging.s3.forcePathStyle", SD_OPT_BOOL, "false", 0, 0, NULL, 0,
     "Whether S3 objects are addressed as <endpoint>/<bucket>/<key> instead of "
     "<bucket>.<endpoint host>/<key> (true or false)."},
    {"staging.s3.multipartThreshold", SD_OPT_SIZE, "64MB", 0, SD_GB(5), NULL, 0,
     "Objects larger than this are uploaded to S3 in parts (bytes)."},
    {"staging.s3.partSize", SD_OPT_SIZE, "16MB", SD_MB(5), SD_GB(5), NULL, 0,
     "Size of each part of an S3 multipart upload (bytes; S3 requires at least 5MB)."},
    {"staging.s3.prefix", SD_OPT_STRING, "", 0, 0, NULL, 0,
     "Key prefix of every staged object in the bucket (key prefix; empty = none)."},
    {"staging.s3.region", SD_OPT_STRING, "us-east-1", 0, 0, NULL, 0,
     "Region the S3 requests are signed for (region name)."},
    {"staging.s3.requestTimeout", SD_OPT_DURATION, "30s", SD_SEC(1), SD_MIN(60), NULL, 0,
     "An S3 request fails when it cannot connect or moves no data for this long (duration)."},
    {"staging.s3.secretAccessKey", SD_OPT_STRING, "", 0, 0, NULL, SD_OPT_SECRET,
     "Secret access key of the S3 staging storage (text; secret)."},
    {"state.backend", SD_OPT_ENUM, "embedded", 0, 0, sd_enum_state_backend, 0,
     "State and coordination store (embedded, or etcd; etcd is the default when etcd.endpoint is "
     "set)."},
    {"state.embedded.path", SD_OPT_STRING, "", 0, 0, NULL, 0,
     "Directory of the embedded state store (directory path; empty = <dataDir>/state)."},
    {"storage.diskCleanup.concurrency", SD_OPT_INT, "50", 1, 500, NULL, 0,
     "Number of files deleted in parallel (count)."},
    {"storage.diskCleanup.enabled", SD_OPT_BOOL, "true", 0, 0, NULL, 0,
     "Whether local slice files without metadata are deleted (true or false)."},
    {"storage.diskCleanup.interval", SD_OPT_DURATION, "5m", SD_MIN(5), SD_HOUR(24), NULL, 0,
     "Interval between local disk cleanup runs (duration)."},
    {"storage.jobCleanup.concurrency", SD_OPT_INT, "50", 1, 500, NULL, 0,
     "Number of jobs cleaned up in parallel (count)."},
    {"storage.jobCleanup.enable", SD_OPT_BOOL, "true", 0, 0, NULL, 0,
     "Whether finished import jobs are deleted (true or false)."},
    {"storage.jobCleanup.errorTolerance", SD_OPT_INT, "10", 0, 1000, NULL, 0,
     "Number of failed deletions tolerated in one cleanup run (count)."},
    {"storage.jobCleanup.interval", SD_OPT_DURATION, "30s", SD_SEC(5), SD_MIN(10), NULL, 0,
     "Interval between job cleanup runs (duration)."},
    {"storage.level.local.encoding.compression.gzip.blockSize", SD_OPT_SIZE, "256KB", SD_KB(16),
     SD_MB(100), NULL, SD_OPT_P, "Size of one block compressed in parallel (bytes)."},
    {"storage.level.local.encoding.compression.gzip.concurrency", SD_OPT_INT, "0", 0, 256, NULL,
     SD_OPT_P, "Number of parallel gzip workers (count; 0 = number of CPUs)."},
    {"storage.level.local.encoding.compression.gzip.implementation", SD_OPT_ENUM, "parallel", 0, 0,
     sd_enum_gzip_impl, SD_OPT_P, "gzip implementation (standard, fast or parallel)."},
    {"storage.level.local.encoding.compression.gzip.level", SD_OPT_INT, "1", 1, 9, NULL, SD_OPT_P,
     "gzip compression level (1 = fastest, 9 = smallest)."},
    {"storage.level.local.encoding.compression.type", SD_OPT_ENUM, "gzip", 0, 0,
     sd_enum_compression, SD_OPT_P, "Compression of slice files (none or gzip)."},
    {"storage.level.local.encoding.encoder.concurrency", SD_OPT_INT, "0", 0, 256, NULL, SD_OPT_P,
     "Number of parallel encoders per slice (count; 0 = number of CPUs)."},
    {"storage.level.local.encoding.encoder.rowSizeLimit", SD_OPT_SIZE, "1536KB", SD_KB(1), SD_MB(2),
     NULL, 0, "Maximum size of one encoded row (bytes)."},
    {"storage.level.local.encoding.encoder.type", SD_OPT_ENUM, "csv", 0, 0, sd_enum_encoder,
     SD_OPT_P, "Record encoder (csv)."},
    {"storage.level.local.encoding.failedChunksThreshold", SD_OPT_INT, "3", 1, 100, NULL, SD_OPT_P,
     "Number of consecutive failed chunks after which a slice is rotated (count)."},
    {"storage.level.local.encoding.inputBuffer", SD_OPT_SIZE, "2MB", 0, SD_MB(16), NULL, SD_OPT_P,
     "Buffer in front of a compressor without its own buffer (bytes; 0 = off)."},
    {"storage.level.local.encoding.maxChunkSize", SD_OPT_SIZE, "512KB", SD_KB(64), SD_MB(1), NULL,
     SD_OPT_P, "Maximum size of one compressed chunk sent to a writer (bytes)."},
    {"storage.level.local.encoding.sync.checkInterval", SD_OPT_DURATION, "5ms", SD_MS(1),
     SD_SEC(30), NULL, SD_OPT_P,
     "Interval between checks of the sync triggers (duration). Accepted for compatibility: "
     "streamd queues a batch for its sync at its first row, so nothing waits for a check."},
    {"storage.level.local.encoding.sync.compressedBytesTrigger", SD_OPT_SIZE, "256KB", 100,
     SD_MB(100), NULL, SD_OPT_P,
     "Compressed bytes since the last sync that trigger a sync (bytes)."},
    {"storage.level.local.encoding.sync.countTrigger", SD_OPT_INT, "10000", 1, 1000000, NULL,
     SD_OPT_P, "Number of records since the last sync that triggers a sync (count)."},
    {"storage.level.local.encoding.sync.intervalTrigger", SD_OPT_DURATION, "50ms", SD_MS(10),
     SD_SEC(30), NULL, SD_OPT_P, "Time since the last sync that triggers a sync (duration)."},
    {"storage.level.local.encoding.sync.mode", SD_OPT_ENUM, "disk", 0, 0, sd_enum_sync_mode,
     SD_OPT_P, "Where a sync makes records durable (disk = fsync, cache = OS page cache)."},
    {"storage.level.local.encoding.sync.uncompressedBytesTrigger", SD_OPT_SIZE, "1MB", 100,
     SD_MB(500), NULL, SD_OPT_P,
     "Uncompressed bytes since the last sync that trigger a sync (bytes)."},
    {"storage.level.local.encoding.sync.wait", SD_OPT_BOOL, "true", 0, 0, NULL, SD_OPT_ENTITY,
     "Whether a request waits for the sync covering its record (true = 200 after sync, false = 202 "
     "at once)."},
    {"storage.level.local.volume.assignment.count", SD_OPT_INT, "1", 1, 100, NULL, SD_OPT_P,
     "Number of volumes a file is assigned to; its slices take turns on them (count)."},
    {"storage.level.local.volume.assignment.preferredTypes", SD_OPT_LIST, "default", 1, INT64_MAX,
     NULL, SD_OPT_P,
     "Volume types preferred for new files, most preferred first (list of type names)."},
    {"storage.level.local.volume.registration.ttlSeconds", SD_OPT_INT, "10", 1, 60, NULL, 0,
     "Time-to-live of a volume's registration lease (seconds)."},
    {"storage.level.local.writer.allocation.enabled", SD_OPT_BOOL, "true", 0, 0, NULL, 0,
     "Whether disk space is preallocated for slice files (true or false)."},
    {"storage.level.local.writer.allocation.relative", SD_OPT_INT, "110", 100, 500, NULL, 0,
     "Space preallocated for a slice relative to the largest of the last 10 slices (percent)."},
    {"storage.level.local.writer.allocation.static", SD_OPT_SIZE, "100MB", 0, 0, NULL, 0,
     "Space preallocated for the first slice of a sink (bytes)."},
    {"storage.level.local.writer.network.kcpInputBuffer", SD_OPT_SIZE, "8MB", 0, 0, NULL, 0,
     "Input buffer of the KCP transport (bytes; accepted for compatibility)."},
    {"storage.level.local.writer.network.kcpResponseBuffer", SD_OPT_SIZE, "512KB", 0, 0, NULL, 0,
     "Response buffer of the KCP transport (bytes; accepted for compatibility)."},
    {"storage.level.local.writer.network.keepAliveInterval", SD_OPT_DURATION, "5s", SD_SEC(1),
     SD_MIN(1), NULL, 0, "Interval between keep-alive probes on node connections (duration)."},
    {"storage.level.local.writer.network.listen", SD_OPT_STRING, "0.0.0.0:6000", 0, 0, NULL, 0,
     "Listen address of the writer's node protocol (host:port)."},
    {"storage.level.local.writer.network.maxWaitingStreamsPerConn", SD_OPT_INT, "1024", 10, 100000,
     NULL, 0, "Maximum number of streams waiting to be accepted on one connection (count)."},
    {"storage.level.local.writer.network.minSlicesPerSourceNode", SD_OPT_INT, "2", 1, 20, NULL, 0,
     "Minimum number of slices each source node writes to per sink (count)."},
    {"storage.level.local.writer.network.pipelineBalancer", SD_OPT_ENUM, "roundRobin", 0, 0,
     sd_enum_balancer, 0, "How a source node spreads records over slices (rand or roundRobin)."},
    {"storage.level.local.writer.network.shutdownTimeout", SD_OPT_DURATION, "30s", SD_SEC(1),
     SD_MIN(10), NULL, 0, "Maximum time of the graceful shutdown of node connections (duration)."},
    {"storage.level.local.writer.network.streamCloseTimeout", SD_OPT_DURATION, "10s", SD_SEC(1),
     SD_SEC(30), NULL, 0, "Timeout of closing a stream (duration)."},
    {"storage.level.local.writer.network.streamMaxWindow", SD_OPT_SIZE, "8MB", SD_KB(256),
     SD_MB(10), NULL, 0, "Maximum flow-control window of one stream (bytes)."},
    {"storage.level.local.writer.network.streamOpenTimeout", SD_OPT_DURATION, "10s", SD_SEC(1),
     SD_SEC(30), NULL, 0, "Timeout of opening a stream (duration)."},
    {"storage.level.local.writer.network.streamWriteTimeout", SD_OPT_DURATION, "10s", SD_SEC(1),
     SD_MIN(1), NULL, 0, "Timeout of one write to a stream (duration)."},
    {"storage.level.local.writer.network.transport", SD_OPT_ENUM, "tcp", 0, 0, sd_enum_transport, 0,
     "Transport of the node protocol (tcp)."},
    {"storage.level.staging.operator.sliceCloseTimeout", SD_OPT_DURATION, "1m", SD_SEC(10),
     SD_MIN(10), NULL, 0, "Timeout of closing a slice (duration)."},
    {"storage.level.staging.operator.sliceRotationCheckInterval", SD_OPT_DURATION, "1s", SD_MS(100),
     SD_SEC(30), NULL, 0, "Interval between checks of the slice upload triggers (duration)."},
    {"storage.level.staging.operator.sliceRotationTimeout", SD_OPT_DURATION, "5m", SD_SEC(30),
     SD_MIN(15), NULL, 0, "Timeout of one slice rotation (duration)."},
    {"storage.level.staging.operator.sliceUploadCheckInterval", SD_OPT_DURATION, "2s", SD_MS(500),
     SD_SEC(30), NULL, 0, "Interval between checks for slices to upload (duration)."},
    {"storage.level.staging.operator.sliceUploadTimeout", SD_OPT_DURATION, "15m", SD_SEC(30),
     SD_MIN(60), NULL, 0, "Timeout of one slice upload (duration)."},
    {"storage.level.staging.upload.minInterval", SD_OPT_DURATION, "10s", SD_SEC(1), SD_MIN(30),
     NULL, 0, "Minimum slice age before upload; takes precedence over the triggers (duration)."},
    {"storage.level.staging.upload.trigger.count", SD_OPT_INT, "10000", 1, 10000000, NULL,
     SD_OPT_ENTITY, "Number of records in a slice that triggers its upload (count)."},
    {"storage.level.staging.upload.trigger.interval", SD_OPT_DURATION, "30s", SD_SEC(1), SD_MIN(30),
     NULL, SD_OPT_ENTITY, "Slice age that triggers its upload (duration)."},
    {"storage.level.staging.upload.trigger.size", SD_OPT_SIZE, "5MB", 100, SD_MB(50), NULL,
     SD_OPT_ENTITY, "Compressed size of a slice that triggers its upload (bytes)."},
    {"storage.level.target.import.maxSlices", SD_OPT_INT, "100", 50, 149, NULL, 0,
     "Number of slices in a file that forces its import (count)."},
    {"storage.level.target.import.minInterval", SD_OPT_DURATION, "1m", SD_SEC(1), SD_HOUR(24), NULL,
     0, "Minimum time between imports of one sink (duration)."},
    {"storage.level.target.import.trigger.count", SD_OPT_INT, "50000", 1, 10000000, NULL,
     SD_OPT_ENTITY, "Number of records in a file that triggers its import (count)."},
    {"storage.level.target.import.trigger.expiration", SD_OPT_DURATION, "30m", SD_MIN(5),
     SD_MIN(45), NULL, SD_OPT_P,
     "Remaining lifetime of the staging credentials that triggers the import (duration)."},
    {"storage.level.target.import.trigger.interval", SD_OPT_DURATION, "1m", SD_SEC(30), SD_HOUR(24),
     NULL, SD_OPT_ENTITY, "File age that triggers its import (duration)."},
    {"storage.level.target.import.trigger.size", SD_OPT_SIZE, "50MB", 100, SD_MB(500), NULL,
     SD_OPT_ENTITY, "Compressed size of a file that triggers its import (bytes)."},
    {"storage.level.target.import.trigger.slicesCount", SD_OPT_INT, "100", 1, 200, NULL, SD_OPT_P,
     "Number of slices in a file that triggers its import (count)."},
    {"storage.level.target.operator.fileCloseTimeout", SD_OPT_DURATION, "1m", SD_SEC(10),
     SD_MIN(10), NULL, 0, "Timeout of closing a file (duration)."},
    {"storage.level.target.operator.fileImportCheckInterval", SD_OPT_DURATION, "1s", SD_MS(500),
     SD_SEC(30), NULL, 0, "Interval between checks for files to import (duration)."},
    {"storage.level.target.operator.fileImportTimeout", SD_OPT_DURATION, "15m", SD_SEC(30),
     SD_MIN(60), NULL, 0, "Timeout of one file import (duration)."},
    {"storage.level.target.operator.fileRotationCheckInterval", SD_OPT_DURATION, "1s", SD_MS(100),
     SD_SEC(30), NULL, 0, "Interval between checks of the file import triggers (duration)."},
    {"storage.level.target.operator.fileRotationTimeout", SD_OPT_DURATION, "5m", SD_SEC(30),
     SD_MIN(15), NULL, 0, "Timeout of one file rotation (duration)."},
    {"storage.metadataCleanup.activeFileExpiration", SD_OPT_DURATION, "168h", SD_HOUR(1),
     SD_HOUR(720), NULL, 0, "Age after which a file that is still active is deleted (duration)."},
    {"storage.metadataCleanup.archivedFileExpiration", SD_OPT_DURATION, "1h", SD_MIN(15),
     SD_HOUR(720), NULL, 0, "Age after which an imported file is deleted (duration)."},
    {"storage.metadataCleanup.archivedFileRetentionPerSink", SD_OPT_INT, "30", 0, 100, NULL, 0,
     "Number of archived files kept per sink (count)."},
    {"storage.metadataCleanup.concurrency", SD_OPT_INT, "50", 1, 500, NULL, 0,
     "Number of files cleaned up in parallel (count)."},
    {"storage.metadataCleanup.enable", SD_OPT_BOOL, "true", 0, 0, NULL, 0,
     "Whether expired file and slice metadata are deleted (true or false)."},
    {"storage.metadataCleanup.errorTolerance", SD_OPT_INT, "10", 0, 1000, NULL, 0,
     "Number of failed deletions tolerated in one cleanup run (count)."},
    {"storage.metadataCleanup.interval", SD_OPT_DURATION, "10m", SD_SEC(30), SD_HOUR(24), NULL, 0,
     "Interval between metadata cleanup runs (duration)."},
    {"storage.retry.initialInterval", SD_OPT_DURATION, "2m", SD_MS(100), SD_HOUR(24), NULL, 0,
     "First delay before retrying a failed upload or import (duration; +-10 % jitter)."},
    {"storage.retry.maxInterval", SD_OPT_DURATION, "3h", SD_MS(100), SD_HOUR(720), NULL, 0,
     "Upper limit of the retry delay (duration)."},
    {"storage.retry.multiplier", SD_OPT_FLOAT, "4", 1, 100, NULL, 0,
     "Factor by which the retry delay grows after each failure (number >= 1)."},
    {"storage.statistics.cache.L2.enabled", SD_OPT_BOOL, "true", 0, 0, NULL, 0,
     "Whether the second-level statistics cache is used (true or false)."},
    {"storage.statistics.cache.L2.interval", SD_OPT_DURATION, "1s", SD_MS(100), SD_SEC(5), NULL, 0,
     "Refresh interval of the second-level statistics cache (duration)."},
    {"storage.statistics.sync.interval", SD_OPT_DURATION, "1s", SD_MS(100), SD_SEC(5), NULL, 0,
     "Interval between flushes of in-memory statistics to the state store (duration)."},
    {"storage.statistics.sync.timeout", SD_OPT_DURATION, "30s", SD_SEC(1), SD_MIN(10), NULL, 0,
     "Timeout of one statistics flush (duration)."},
    {"storage.volumesPath", SD_OPT_STRING, "", 0, 0, NULL, 0,
     "Directory whose <type>/<label>/ subdirectories are the local volumes (directory path; empty "
     "= <dataDir>/volumes)."},
    {"storageApiHost", SD_OPT_STRING, "", 0, 0, NULL, 0,
     "Keboola Storage API host (host name; not needed in standalone mode)."},
    {"tables.backend", SD_OPT_ENUM, "sqlite", 0, 0, sd_enum_tables_backend, 0,
     "Table storage that sinks import into (sqlite, postgres or keboola)."},
    {"tables.postgres.connectTimeout", SD_OPT_DURATION, "10s", SD_SEC(1), SD_MIN(10), NULL, 0,
     "Timeout of opening one PostgreSQL connection (duration, whole seconds)."},
    {"tables.postgres.poolSize", SD_OPT_INT, "4", 1, 64, NULL, 0,
     "Connections to PostgreSQL for concurrent imports; one more is kept for the API's table "
     "checks (count)."},
    {"tables.postgres.statementTimeout", SD_OPT_DURATION, "0s", SD_MS(0), SD_HOUR(24), NULL, 0,
     "Longest time one PostgreSQL statement (a slice's COPY included) may run; 0 = no limit "
     "(duration)."},
    {"tables.postgres.url", SD_OPT_STRING, "", 0, 0, NULL, SD_OPT_SECRET,
     "PostgreSQL connection string (libpq URI or key=value conninfo) when tables.backend is "
     "postgres; the password may be in it, in PGPASSWORD or in a ~/.pgpass file (libpq reads "
     "both itself) (text; secret)."},
    {"tables.sqlite.path", SD_OPT_STRING, "", 0, 0, NULL, 0,
     "Directory of the per-project SQLite table databases (directory path; empty = "
     "<dataDir>/tables)."},
    {"watchTelemetryInterval", SD_OPT_DURATION, "5m", SD_SEC(1), SD_HOUR(24), NULL, 0,
     "Interval between telemetry reports of state watchers (duration)."},
};

#define SD_NOPTS (sizeof(sd_opts) / sizeof(sd_opts[0]))

const struct sd_opt *sd_opt_table(size_t *n)
{
    if (n != NULL) {
        *n = SD_NOPTS;
    }
    return sd_opts;
}

const struct sd_opt *sd_opt_find(const char *key)
{
    size_t lo = 0;
    size_t hi = SD_NOPTS;

    if (key == NULL) {
        return NULL;
    }
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(key, sd_opts[mid].key);
        if (c == 0) {
            return &sd_opts[mid];
        }
        if (c < 0) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return NULL;
}

/* Why the sync triggers cannot apply (one text for the five keys). */
#define SD_OPT_WHY_KCP                                                                             \
    "Buffers of the reference's KCP transport, which it does not build either; streamd's node "    \
    "protocol runs over TCP."
#define SD_OPT_WHY_SYNC                                                                            \
    "Bounds how much unsynced data the reference holds before a sync; streamd's group commit "     \
    "syncs each batch as soon as the previous sync ends, so no more than one batch is ever "       \
    "unsynced and nothing waits for a trigger."

/* Keys that do nothing in standalone streamd, by group: a pattern ending in '.' covers every key
 * below it, any other pattern is one key. A unit test checks that every other key is read. */
static const struct {
    const char *pattern;
    enum sd_opt_mark mark;
    const char *why;
} sd_marks[] = {
    {"api.kubernetesTokenPath", SD_OPT_NOT_APPLICABLE,
     "The reference exchanges Keboola programmatic tokens with a Kubernetes service-account token; "
     "streamd authenticates its own API tokens (streamd token create)."},
    {"api.task.ttlSeconds", SD_OPT_CLUSTER,
     "TTL of the etcd session that holds the locks of running tasks; standalone tasks lock in "
     "process, and finished tasks stay readable 1 h (success) or 48 h (error) as in the "
     "reference."},
    {"datadog.", SD_OPT_NOT_APPLICABLE,
     "Datadog tracing and profiling of the Go runtime; streamd exports Prometheus metrics on "
     "metrics.listen."},
    {"debugHTTPClient", SD_OPT_NOT_APPLICABLE,
     "Logs the reference's requests to the Keboola Storage API; standalone streamd sends no HTTP "
     "requests (staging and tables are local)."},
    {"distribution.eventsGroupInterval", SD_OPT_CLUSTER,
     "Grouping of topology changes; streamd rebuilds a group's hash ring at each change."},
    {"distribution.grantTimeout", SD_OPT_CLUSTER,
     "Timeout of one lease grant; streamd retries a failed grant with backoff until "
     "distribution.startupTimeout at start-up, and for ever later."},
    {"distribution.shutdownTimeout", SD_OPT_CLUSTER,
     "Timeout of leaving the cluster; streamd revokes its leases once at shutdown."},
    {"encryption.aes.secretKey", SD_OPT_NOT_APPLICABLE,
     "The reference encrypts the Keboola Storage token of each sink and the upload credentials "
     "of staging files; streamd stores neither (API tokens are kept as SHA-256 hashes, the source "
     "secret is part of its public URL as in the reference), so there is nothing to encrypt."},
    {"encryption.aws.", SD_OPT_REJECTED,
     "Cloud KMS encryption (encryption.provider aws) is not supported: streamd stores no secret to "
     "encrypt."},
    {"encryption.azure.", SD_OPT_REJECTED,
     "Cloud KMS encryption (encryption.provider azure) is not supported: streamd stores no secret "
     "to encrypt."},
    {"encryption.gcp.", SD_OPT_REJECTED,
     "Cloud KMS encryption (encryption.provider gcp) is not supported: streamd stores no secret to "
     "encrypt."},
    {"encryption.provider", SD_OPT_NOT_APPLICABLE,
     "The reference encrypts the Keboola Storage token of each sink and the upload credentials "
     "of staging files; streamd stores neither, so none and aes change nothing, and the cloud KMS "
     "providers (gcp, aws, azure) are rejected."},
    {"pprof.", SD_OPT_NOT_APPLICABLE,
     "Go's pprof profiling server; profile streamd with perf or the sanitizer builds."},
    {"sink.table.keboola.", SD_OPT_NOT_APPLICABLE,
     "Import jobs and events of Keboola Storage; standalone sinks import into tables.backend "
     "(sqlite)."},
    {"storage.jobCleanup.", SD_OPT_NOT_APPLICABLE,
     "Cleanup of Keboola Storage import jobs; streamd's imports into tables.backend are not jobs."},
    {"storage.statistics.cache.", SD_OPT_NOT_APPLICABLE,
     "The reference caches statistics read from etcd; streamd reads them from its embedded store "
     "in one transaction, with nothing to cache."},
    {"storage.statistics.sync.timeout", SD_OPT_NOT_APPLICABLE,
     "Timeout of the reference's flush of statistics to etcd; streamd's flush is one local write "
     "that cannot hang apart from the whole state store."},
    {"storage.level.local.encoding.encoder.concurrency", SD_OPT_NOT_APPLICABLE,
     "Parallel encoders per slice of the reference's source nodes; streamd maps a record on the "
     "thread that received it (or a template worker) and compresses whole batches."},
    {"storage.level.local.encoding.encoder.type", SD_OPT_NOT_APPLICABLE,
     "Record encoder; csv is the only one, in the reference too."},
    {"storage.level.local.encoding.inputBuffer", SD_OPT_NOT_APPLICABLE,
     "Buffer in front of a streaming compressor of the reference; streamd's compressors take a "
     "whole batch at once."},
    {"storage.level.local.encoding.maxChunkSize", SD_OPT_NOT_APPLICABLE,
     "Size of the compressed chunks a reference source node sends to its writer; a standalone node "
     "writes its own slices."},
    {"storage.level.local.encoding.sync.checkInterval", SD_OPT_NOT_APPLICABLE, SD_OPT_WHY_SYNC},
    {"storage.level.local.encoding.sync.compressedBytesTrigger", SD_OPT_NOT_APPLICABLE,
     SD_OPT_WHY_SYNC},
    {"storage.level.local.encoding.sync.countTrigger", SD_OPT_NOT_APPLICABLE, SD_OPT_WHY_SYNC},
    {"storage.level.local.encoding.sync.intervalTrigger", SD_OPT_NOT_APPLICABLE, SD_OPT_WHY_SYNC},
    {"storage.level.local.encoding.sync.uncompressedBytesTrigger", SD_OPT_NOT_APPLICABLE,
     SD_OPT_WHY_SYNC},
    {"storage.level.local.writer.network.kcpInputBuffer", SD_OPT_NOT_APPLICABLE, SD_OPT_WHY_KCP},
    {"storage.level.local.writer.network.kcpResponseBuffer", SD_OPT_NOT_APPLICABLE, SD_OPT_WHY_KCP},
    {"storage.level.local.writer.network.maxWaitingStreamsPerConn", SD_OPT_NOT_APPLICABLE,
     "Streams of the reference's yamux sessions; streamd multiplexes a source node's files on one "
     "connection without streams (docs/PROTOCOL.md)."},
    {"storage.level.local.writer.network.streamOpenTimeout", SD_OPT_NOT_APPLICABLE,
     "A yamux stream's open timeout; streamd opens files in the background and balances records "
     "over the open ones."},
    {"storage.level.local.writer.network.streamWriteTimeout", SD_OPT_NOT_APPLICABLE,
     "A yamux stream's write timeout; streamd bounds what is in flight by streamMaxWindow and "
     "ends silent connections after three keepAliveInterval."},
    {"storage.level.local.writer.network.transport", SD_OPT_NOT_APPLICABLE,
     "tcp is the only transport (the reference's kcp is not built)."},
    {"storageApiHost", SD_OPT_NOT_APPLICABLE,
     "Keboola Storage API host; standalone sinks import into tables.backend (sqlite) and check "
     "tokens locally."},
    {"watchTelemetryInterval", SD_OPT_CLUSTER, "Telemetry of the etcd watchers of a cluster node."},
};

enum sd_opt_mark sd_opt_mark(const struct sd_opt *opt, const char **why)
{
    size_t i;

    for (i = 0; i < sizeof(sd_marks) / sizeof(sd_marks[0]); i++) {
        const char *pat = sd_marks[i].pattern;
        size_t n = strlen(pat);
        int hit = pat[n - 1] == '.' ? strncmp(opt->key, pat, n) == 0 : strcmp(opt->key, pat) == 0;
        if (hit) {
            if (why != NULL) {
                *why = sd_marks[i].why;
            }
            return sd_marks[i].mark;
        }
    }
    if (why != NULL) {
        *why = NULL;
    }
    return SD_OPT_WORKS;
}

const char *sd_opt_mark_name(enum sd_opt_mark mark)
{
    switch (mark) {
    case SD_OPT_CLUSTER:
        return "cluster";
    case SD_OPT_NOT_APPLICABLE:
        return "not applicable";
    case SD_OPT_REJECTED:
        return "rejected";
    case SD_OPT_WORKS:
        break;
    }
    return "";
}

/* ---- sizes ---- */

struct sd_unit {
    const char *name;
    int64_t mult;
};

static const struct sd_unit sd_size_units[] = {
    {"b", 1},
    {"k", SD_KB(1)},
    {"kb", SD_KB(1)},
    {"kib", SD_KB(1)},
    {"m", SD_MB(1)},
    {"mb", SD_MB(1)},
    {"mib", SD_MB(1)},
    {"g", SD_MB(1024)},
    {"gb", SD_MB(1024)},
    {"gib", SD_MB(1024)},
    {"t", SD_MB(1024) * 1024},
    {"tb", SD_MB(1024) * 1024},
    {"tib", SD_MB(1024) * 1024},
};

int sd_parse_size(const char *text, int64_t *bytes)
{
    const char *p = text;
    int64_t v = 0;
    int64_t mult = 0;
    int64_t r;
    size_t i;

    if (p == NULL || !isdigit((unsigned char)*p)) {
        return SD_EINVAL;
    }
    for (; isdigit((unsigned char)*p); p++) {
        int d = *p - '0';
        if (v > (INT64_MAX - d) / 10) {
            return SD_EINVAL;
        }
        v = v * 10 + d;
    }
    if (*p == '\0') {
        mult = 1;
    } else {
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        for (i = 0; i < sizeof(sd_size_units) / sizeof(sd_size_units[0]); i++) {
            if (strcasecmp(p, sd_size_units[i].name) == 0) {
                mult = sd_size_units[i].mult;
                break;
            }
        }
    }
    if (mult == 0 || __builtin_mul_overflow(v, mult, &r)) {
        return SD_EINVAL;
    }
    if (bytes != NULL) {
        *bytes = r;
    }
    return 0;
}

void sd_format_size(int64_t bytes, char *out, size_t outlen)
{
    static const struct sd_unit units[] = {
        {"TB", SD_MB(1024) * 1024}, {"GB", SD_MB(1024)}, {"MB", SD_MB(1)}, {"KB", SD_KB(1)}};
    uint64_t v = bytes < 0 ? (uint64_t)0 - (uint64_t)bytes : (uint64_t)bytes;
    const char *sign = bytes < 0 ? "-" : "";
    size_t i;

    if (out == NULL || outlen == 0) {
        return;
    }
    for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        uint64_t m = (uint64_t)units[i].mult;
        if (v != 0 && v % m == 0) {
            snprintf(out, outlen, "%s%" PRIu64 "%s", sign, v / m, units[i].name);
            return;
        }
    }
    snprintf(out, outlen, "%s%" PRIu64 "B", sign, v);
}

/* ---- durations ---- */

#define SD_NS_PER_MS INT64_C(1000000)

static const struct sd_unit sd_duration_units[] = {
    {"ns", 1},
    {"us", 1000},
    {"\xc2\xb5s", 1000}, /* U+00B5 micro sign */
    {"\xce\xbcs", 1000}, /* U+03BC Greek mu */
    {"ms", SD_NS_PER_MS},
    {"s", 1000 * SD_NS_PER_MS},
    {"m", 60 * 1000 * SD_NS_PER_MS},
    {"h", 3600 * 1000 * SD_NS_PER_MS},
};

/* Parses one <number><unit> part at *pp into nanoseconds; advances *pp. */
static int sd_duration_part(const char **pp, int64_t *ns)
{
    const char *p = *pp;
    const char *unit;
    int64_t ip = 0;
    int64_t frac = 0;
    int64_t scale = 1;
    int64_t mult = 0;
    int64_t part;
    int digits = 0;
    size_t ulen;
    size_t i;

    for (; isdigit((unsigned char)*p); p++, digits++) {
        int d = *p - '0';
        if (ip > (INT64_MAX - d) / 10) {
            return SD_EINVAL;
        }
        ip = ip * 10 + d;
    }
    if (*p == '.') {
        for (p++; isdigit((unsigned char)*p); p++, digits++) {
            /* Digits beyond 18 are below any unit's resolution: drop them. */
            if (scale < INT64_C(1000000000000000000)) {
                frac = frac * 10 + (*p - '0');
                scale *= 10;
            }
        }
    }
    if (digits == 0) {
        return SD_EINVAL;
    }
    unit = p;
    while (*p != '\0' && *p != '.' && !isdigit((unsigned char)*p)) {
        p++;
    }
    ulen = (size_t)(p - unit);
    for (i = 0; i < sizeof(sd_duration_units) / sizeof(sd_duration_units[0]); i++) {
        if (strlen(sd_duration_units[i].name) == ulen &&
            memcmp(unit, sd_duration_units[i].name, ulen) == 0) {
            mult = sd_duration_units[i].mult;
            break;
        }
    }
    if (mult == 0 || __builtin_mul_overflow(ip, mult, &part)) {
        return SD_EINVAL;
    }
    if (frac > 0) {
        long long f = llround((double)frac * ((double)mult / (double)scale));
        if (__builtin_add_overflow(part, (int64_t)f, &part)) {
            return SD_EINVAL;
        }
    }
    *pp = p;
    *ns = part;
    return 0;
}

int sd_parse_duration(const char *text, int64_t *ms)
{
    const char *p = text;
    int64_t total = 0;

    if (p == NULL || *p == '\0') {
        return SD_EINVAL;
    }
    if (strcmp(p, "0") == 0) {
        total = 0;
    } else {
        while (*p != '\0') {
            int64_t ns;
            if (sd_duration_part(&p, &ns) != 0 || __builtin_add_overflow(total, ns, &total)) {
                return SD_EINVAL;
            }
        }
        if (total % SD_NS_PER_MS != 0) {
            return SD_EINVAL;
        }
    }
    if (ms != NULL) {
        *ms = total / SD_NS_PER_MS;
    }
    return 0;
}

void sd_format_duration(int64_t ms, char *out, size_t outlen)
{
    uint64_t v = ms < 0 ? (uint64_t)0 - (uint64_t)ms : (uint64_t)ms;
    uint64_t parts[4];
    static const char *const names[4] = {"h", "m", "s", "ms"};
    char tmp[96];
    size_t len = 0;
    size_t i;

    if (out == NULL || outlen == 0) {
        return;
    }
    parts[0] = v / 3600000;
    parts[1] = v / 60000 % 60;
    parts[2] = v / 1000 % 60;
    parts[3] = v % 1000;
    tmp[0] = '\0';
    if (ms < 0) {
        tmp[len++] = '-';
        tmp[len] = '\0';
    }
    for (i = 0; i < 4; i++) {
        if (parts[i] != 0) {
            /* 4 parts of at most 20 digits + 2 letters each fit in tmp. */
            len +=
                (size_t)snprintf(tmp + len, sizeof(tmp) - len, "%" PRIu64 "%s", parts[i], names[i]);
        }
    }
    if (v == 0) {
        snprintf(tmp, sizeof(tmp), "0s");
    }
    snprintf(out, outlen, "%s", tmp);
}

/* ---- scalar parsers ---- */

static int sd_parse_bool(const char *text, int64_t *v)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    size_t i;

    for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(text, yes[i]) == 0) {
            *v = 1;
            return 0;
        }
        if (strcasecmp(text, no[i]) == 0) {
            *v = 0;
            return 0;
        }
    }
    return SD_EINVAL;
}

static int sd_parse_int(const char *text, int64_t *v)
{
    const char *p = text;
    char *end;
    long long r;

    if (*p == '-' || *p == '+') {
        p++;
    }
    if (!isdigit((unsigned char)*p)) {
        return SD_EINVAL;
    }
    errno = 0;
    r = strtoll(text, &end, 10);
    if (errno != 0 || *end != '\0') {
        return SD_EINVAL;
    }
    *v = (int64_t)r;
    return 0;
}

static int sd_parse_float(const char *text, double *v)
{
    const char *p = text;
    char *end;
    double r;

    if (*p == '-' || *p == '+') {
        p++;
    }
    if (!isdigit((unsigned char)*p) && *p != '.') {
        return SD_EINVAL;
    }
    errno = 0;
    r = strtod(text, &end);
    if (errno != 0 || *end != '\0' || !isfinite(r)) {
        return SD_EINVAL;
    }
    *v = r;
    return 0;
}

static int sd_parse_enum(const struct sd_opt *opt, const char *text, int64_t *v)
{
    int64_t i;

    for (i = 0; opt->enum_values != NULL && opt->enum_values[i] != NULL; i++) {
        if (strcasecmp(text, opt->enum_values[i]) == 0) {
            *v = i;
            return 0;
        }
    }
    return SD_EINVAL;
}

static int sd_is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Counts the items of a comma-separated list; fails on an empty item. Blank text = no item. */
static int sd_parse_list(const char *text, int64_t *count)
{
    const char *p = text;
    int64_t n = 0;

    while (sd_is_blank(*p)) {
        p++;
    }
    if (*p == '\0') {
        *count = 0;
        return 0;
    }
    for (;;) {
        const char *start;
        const char *end;
        while (sd_is_blank(*p)) {
            p++;
        }
        start = p;
        while (*p != '\0' && *p != ',') {
            p++;
        }
        end = p;
        while (end > start && sd_is_blank(end[-1])) {
            end--;
        }
        if (end == start) {
            return SD_EINVAL;
        }
        n++;
        if (*p == '\0') {
            break;
        }
        p++;
    }
    *count = n;
    return 0;
}

/* ---- sd_opt_parse ---- */

void sd__opt_echo(struct sd_buf *err, const char *text)
{
    size_t i;

    sd_buf_append_char(err, '"');
    for (i = 0; text[i] != '\0'; i++) {
        unsigned char c = (unsigned char)text[i];
        if (i == SD_OPT_ECHO_MAX) {
            sd_buf_append_str(err, "...");
            break;
        }
        if (c == '"' || c == '\\') {
            sd_buf_append_char(err, '\\');
            sd_buf_append_char(err, (char)c);
        } else if (c < 0x20 || c == 0x7f) {
            sd_buf_printf(err, "\\x%02x", c);
        } else {
            sd_buf_append_char(err, (char)c);
        }
    }
    sd_buf_append_char(err, '"');
}

static void sd_fail(const struct sd_opt *opt, const char *text, struct sd_buf *err, const char *fmt,
                    ...) __attribute__((format(printf, 4, 5)));

static void sd_fail(const struct sd_opt *opt, const char *text, struct sd_buf *err, const char *fmt,
                    ...)
{
    va_list ap;

    if (err == NULL) {
        return;
    }
    sd_buf_reset(err);
    sd_buf_append_str(err, "invalid value ");
    sd__opt_echo(err, (opt->flags & SD_OPT_SECRET) ? "***" : text);
    sd_buf_printf(err, " for \"%s\": ", opt->key);
    va_start(ap, fmt);
    sd_buf_vprintf(err, fmt, ap);
    va_end(ap);
}

static void sd_format_bound(const struct sd_opt *opt, int64_t v, char *out, size_t outlen)
{
    switch (opt->type) {
    case SD_OPT_SIZE:
        sd_format_size(v, out, outlen);
        break;
    case SD_OPT_DURATION:
        sd_format_duration(v, out, outlen);
        break;
    default:
        snprintf(out, outlen, "%" PRId64, v);
        break;
    }
}

static void sd_fail_bounds(const struct sd_opt *opt, const char *text, struct sd_buf *err)
{
    char lo[48];
    char hi[48];
    const char *items = opt->type == SD_OPT_LIST ? " item(s)" : "";
    const char *verb = opt->type == SD_OPT_LIST ? "have" : "be";

    sd_format_bound(opt, opt->min, lo, sizeof(lo));
    sd_format_bound(opt, opt->max, hi, sizeof(hi));
    if (opt->max == INT64_MAX) {
        sd_fail(opt, text, err, "must %s at least %s%s", verb, lo, items);
    } else if (opt->min == INT64_MIN) {
        sd_fail(opt, text, err, "must %s at most %s%s", verb, hi, items);
    } else {
        sd_fail(opt, text, err, "must %s between %s and %s%s", verb, lo, hi, items);
    }
}

static void sd_fail_enum(const struct sd_opt *opt, const char *text, struct sd_buf *err)
{
    struct sd_buf list = SD_BUF_INIT;
    size_t i;

    for (i = 0; opt->enum_values != NULL && opt->enum_values[i] != NULL; i++) {
        sd_buf_printf(&list, "%s%s", i ? ", " : "", opt->enum_values[i]);
    }
    sd_fail(opt, text, err, "must be one of: %s", list.len ? list.data : "");
    sd_buf_fini(&list);
}

int sd_opt_parse(const struct sd_opt *opt, const char *text, int64_t *num, double *dbl,
                 struct sd_buf *err)
{
    int has_bounds = !(opt->min == 0 && opt->max == 0);
    int64_t v = 0;
    double d = 0;

    if (text == NULL) {
        text = "";
    }
    switch (opt->type) {
    case SD_OPT_BOOL:
        if (sd_parse_bool(text, &v) != 0) {
            sd_fail(opt, text, err, "must be true or false");
            return SD_EINVAL;
        }
        has_bounds = 0;
        break;
    case SD_OPT_INT:
        if (sd_parse_int(text, &v) != 0) {
            sd_fail(opt, text, err, "not an integer");
            return SD_EINVAL;
        }
        break;
    case SD_OPT_FLOAT:
        if (sd_parse_float(text, &d) != 0) {
            sd_fail(opt, text, err, "not a number");
            return SD_EINVAL;
        }
        if (has_bounds && (d < (double)opt->min || d > (double)opt->max)) {
            sd_fail_bounds(opt, text, err);
            return SD_EINVAL;
        }
        has_bounds = 0;
        v = d >= 9.2e18 ? INT64_MAX : d <= -9.2e18 ? INT64_MIN : (int64_t)d;
        break;
    case SD_OPT_SIZE:
        if (sd_parse_size(text, &v) != 0) {
            sd_fail(opt, text, err, "not a size (digits with B, KB, MB or GB, e.g. 16KB)");
            return SD_EINVAL;
        }
        break;
    case SD_OPT_DURATION:
        if (sd_parse_duration(text, &v) != 0) {
            sd_fail(opt, text, err,
                    "not a duration (whole milliseconds, e.g. 200ms, 10s, 5m or 1h30m)");
            return SD_EINVAL;
        }
        break;
    case SD_OPT_ENUM:
        if (sd_parse_enum(opt, text, &v) != 0) {
            sd_fail_enum(opt, text, err);
            return SD_EINVAL;
        }
        has_bounds = 0;
        break;
    case SD_OPT_LIST:
        if (sd_parse_list(text, &v) != 0) {
            sd_fail(opt, text, err, "a comma-separated list must not contain empty items");
            return SD_EINVAL;
        }
        break;
    case SD_OPT_STRING:
    default:
        has_bounds = 0;
        break;
    }
    if (has_bounds && (v < opt->min || v > opt->max)) {
        sd_fail_bounds(opt, text, err);
        return SD_EINVAL;
    }
    if (num != NULL) {
        *num = v;
    }
    if (dbl != NULL) {
        *dbl = opt->type == SD_OPT_FLOAT ? d : (double)v;
    }
    return 0;
}

/* ---- environment names ---- */

static void sd_env_name(const char *key, char *out, size_t outlen, int split_words)
{
    static const char prefix[] = "STREAM_";
    size_t o = 0;
    size_t i;

#define SD_PUT(ch)                                                                                 \
    do {                                                                                           \
        if (o + 1 < outlen) {                                                                      \
            out[o++] = (ch);                                                                       \
        }                                                                                          \
    } while (0)

    if (out == NULL || outlen == 0) {
        return;
    }
    for (i = 0; prefix[i] != '\0'; i++) {
        SD_PUT(prefix[i]);
    }
    for (i = 0; key != NULL && key[i] != '\0'; i++) {
        unsigned char c = (unsigned char)key[i];
        unsigned char prev = i > 0 ? (unsigned char)key[i - 1] : '.';
        unsigned char next = (unsigned char)key[i + 1];
        if (c == '.') {
            SD_PUT('_');
            continue;
        }
        if (isupper(c) && prev != '.' &&
            (!isupper(prev) || (split_words && next != '\0' && islower(next)))) {
            SD_PUT('_');
        }
        SD_PUT((char)toupper(c));
    }
    out[o] = '\0';
#undef SD_PUT
}

void sd_opt_env_name(const char *key, char *out, size_t outlen)
{
    sd_env_name(key, out, outlen, 0);
}

void sd_opt_env_name_alt(const char *key, char *out, size_t outlen)
{
    sd_env_name(key, out, outlen, 1);
}

/* ---- suggestions ---- */

/* Longest key compared by edit distance; longer input gets no edit-distance suggestion. */
#define SD_SUGGEST_MAX 256

/* Case-insensitive Levenshtein distance; row is scratch of strlen(b) + 1 entries. */
static size_t sd_edit_distance(const char *a, const char *b, size_t *row)
{
    size_t la = strlen(a);
    size_t lb = strlen(b);
    size_t i;
    size_t j;

    for (j = 0; j <= lb; j++) {
        row[j] = j;
    }
    for (i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t cost =
                tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1]) ? 0 : 1;
            size_t best = diag + cost;
            if (up + 1 < best) {
                best = up + 1;
            }
            if (row[j - 1] + 1 < best) {
                best = row[j - 1] + 1;
            }
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

const char *sd_opt_suggest(const char *key)
{
    const char *found = NULL;
    size_t klen;
    size_t best = SIZE_MAX;
    size_t limit;
    size_t *row;
    size_t i;

    if (key == NULL || *key == '\0') {
        return NULL;
    }
    klen = strlen(key);
    /* A unique key ending in ".<key>": the user left out the group. */
    for (i = 0; i < SD_NOPTS; i++) {
        size_t l = strlen(sd_opts[i].key);
        if (l > klen && sd_opts[i].key[l - klen - 1] == '.' &&
            strcasecmp(sd_opts[i].key + l - klen, key) == 0) {
            if (found != NULL) {
                found = NULL;
                break;
            }
            found = sd_opts[i].key;
        }
    }
    if (found != NULL || klen > SD_SUGGEST_MAX) {
        return found;
    }
    limit = klen / 4 > 2 ? klen / 4 : 2;
    row = sd_xmalloc((SD_SUGGEST_MAX + 1) * sizeof(*row));
    for (i = 0; i < SD_NOPTS; i++) {
        size_t d;
        if (strlen(sd_opts[i].key) > SD_SUGGEST_MAX) {
            continue;
        }
        d = sd_edit_distance(key, sd_opts[i].key, row);
        if (d < best) {
            best = d;
            found = sd_opts[i].key;
        }
    }
    free(row);
    return best <= limit ? found : NULL;
}
