#!/usr/bin/env python3
"""A service for agentpool's `http` handler. Standard library only.

agentpool POSTs each task to it as JSON: {"task_id": "...", "agent_id": "...", "input": ...}.
A 2xx answer with a JSON body is the task's output; any other answer fails the attempt, quoting
its status and the start of its body.

It answers {"echo": input, "agent_id": "..."}; an input object with "fail" answers 500.

Use: python3 examples/agents/http_agent.py [PORT]     (port 9000 by default)
     handler = { type = "http", url = "http://127.0.0.1:9000/task" }
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Task(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        task = json.loads(self.rfile.read(length) or b"null")
        data = task.get("input")
        if isinstance(data, dict) and data.get("fail"):
            self.answer(500, {"error": str(data["fail"])})
        else:
            self.answer(200, {"echo": data, "agent_id": task.get("agent_id")})

    def answer(self, status, body):
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
    print(f"listening on 127.0.0.1:{port}", file=sys.stderr, flush=True)
    ThreadingHTTPServer(("127.0.0.1", port), Task).serve_forever()
