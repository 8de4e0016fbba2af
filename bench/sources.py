"""Creates the bench sources and sinks through the configuration API and prints each source's
URL, one per line, in the order named. Usage: sources.py API_URL TOKEN NAME...
  bench     sink with uuid, datetime, ip, body, headers and two path columns (a, c.f.g)
  benchtpl  the same with one template column (Body('a') + ":" + Body('c.f.g')) instead
  benchidle the bench sink with its upload and import triggers at their maxima: nothing leaves
            the local disk during a run (bench/import_bench.sh, "without imports")
  benchimp  the bench sink uploading every second and importing every upload (triggers at
            their minima; with the service's minimum intervals at 1s: imports every second)
"""
import json
import sys
import time
import urllib.request

COLS = [{"type": "uuid", "name": "id"}, {"type": "datetime", "name": "datetime"},
        {"type": "ip", "name": "ip"}, {"type": "body", "name": "body"},
        {"type": "headers", "name": "headers"},
        {"type": "path", "name": "a", "path": "a"},
        {"type": "path", "name": "g", "path": "c.f.g", "rawString": True}]
SINKS = {
    "bench": ("in.c-bench.events", COLS),
    "benchtpl": ("in.c-bench.tpl", COLS[:5] + [
        {"type": "template", "name": "ag", "rawString": True,
         "template": {"language": "jsonnet", "content": "Body('a') + \":\" + Body('c.f.g')"}}]),
    "benchidle": ("in.c-bench.idle", COLS),
    "benchimp": ("in.c-bench.imp", COLS),
}
UP, IMP = "storage.level.staging.upload.trigger.", "storage.level.target.import.trigger."
SETTINGS = {
    "benchidle": {UP + "count": 10000000, UP + "size": "50MB", UP + "interval": "30m",
                  IMP + "count": 10000000, IMP + "size": "500MB", IMP + "interval": "24h"},
    "benchimp": {UP + "count": 1, UP + "interval": "1s", IMP + "count": 1},
}


def main(api, token, names):
    def call(method, path, body=None):
        req = urllib.request.Request(api + path, method=method,
                                     data=json.dumps(body).encode() if body else None,
                                     headers={"X-StorageApi-Token": token,
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req) as r:
            return json.load(r)

    def wait(task):
        while task["status"] == "processing":
            time.sleep(0.05)
            task = call("GET", "/v1/tasks/" + task["taskId"])
        assert task["status"] == "success", task

    for name in names:
        table, cols = SINKS[name]
        wait(call("POST", "/v1/branches/default/sources",
                  {"sourceId": name, "name": name, "type": "http"}))
        wait(call("POST", "/v1/branches/default/sources/%s/sinks" % name,
                  {"sinkId": name, "name": name, "type": "table",
                   "table": {"type": "keboola", "tableId": table, "mapping": {"columns": cols}}}))
        if name in SETTINGS:
            wait(call("PATCH", "/v1/branches/default/sources/%s/sinks/%s/settings" % (name, name),
                      {"settings": [{"key": k, "value": v} for k, v in SETTINGS[name].items()]}))
    for name in names:
        print(call("GET", "/v1/branches/default/sources/" + name)["http"]["url"])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
