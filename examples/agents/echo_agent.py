#!/usr/bin/env python3
"""A persistent agent for agentpool's `exec` handler (mode = "persistent"). Standard library only.

agentpool starts it once per agent and speaks JSON lines with it:

  in  (stdin):  {"type": "task", "task_id": "...", "input": ...}
                {"type": "cancel", "task_id": "..."}
  out (stdout): {"type": "progress", "task_id": "...", "data": ...}
                {"type": "result", "task_id": "...", "output": ...}
                {"type": "error", "task_id": "...", "message": "..."}

Stdout is for messages only; log to stderr. When stdin closes, finish and exit.
A reader thread takes stdin, so a cancel arrives while a task is being worked on.

It answers each task with its input. Knobs in an input object, for tests:
  "progress": N      send N progress messages first
  "sleep_ms": N      work for N ms (a cancel stops it, answered with an error)
  "ignore_cancel": true  keep working through a cancel and answer anyway (a late answer)
  "fail": "msg"      answer with an error
  "crash": true      exit the process with status 3 (or the given number)
  "env": true        answer with this process's AGENTPOOL_* environment
  "pid": true        answer with this process's pid and process group

Use: handler = { type = "exec", command = ["python3", "examples/agents/echo_agent.py"] }
"""

import json
import os
import queue
import sys
import threading

out_lock = threading.Lock()
# task_id -> threading.Event set by a cancel; guarded by `cancels_lock`.
cancels = {}
cancels_lock = threading.Lock()


def send(message):
    with out_lock:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()


def log(text):
    print(text, file=sys.stderr, flush=True)


def read_stdin(tasks):
    """Reads messages until stdin closes: tasks are queued, cancels take effect at once."""
    for line in sys.stdin:
        try:
            message = json.loads(line)
        except ValueError:
            log("skipping a line that is not JSON")
            continue
        task_id = message.get("task_id")
        if message.get("type") == "task":
            event = threading.Event()
            with cancels_lock:
                cancels[task_id] = event
            tasks.put((task_id, message.get("input"), event))
        elif message.get("type") == "cancel":
            with cancels_lock:
                event = cancels.get(task_id)
            if event is not None:
                event.set()
    tasks.put(None)


def answer(task_id, data, cancelled):
    knobs = data if isinstance(data, dict) else {}
    if knobs.get("crash"):
        code = knobs["crash"] if type(knobs["crash"]) is int else 3
        log(f"crashing on purpose with status {code}")
        sys.stdout.flush()
        os._exit(code)
    steps = int(knobs.get("progress", 0))
    for step in range(1, steps + 1):
        send({"type": "progress", "task_id": task_id, "data": {"step": step, "of": steps}})
    seconds = knobs.get("sleep_ms", 0) / 1000
    if knobs.get("ignore_cancel"):
        threading.Event().wait(seconds)
    elif cancelled.wait(seconds):
        send({"type": "error", "task_id": task_id, "message": "cancelled"})
        return
    if knobs.get("fail"):
        send({"type": "error", "task_id": task_id, "message": str(knobs["fail"])})
    elif knobs.get("env"):
        env = {k: v for k, v in os.environ.items() if k.startswith("AGENTPOOL_")}
        send({"type": "result", "task_id": task_id, "output": env})
    elif knobs.get("pid"):
        output = {"pid": os.getpid(), "pgid": os.getpgid(0)}
        send({"type": "result", "task_id": task_id, "output": output})
    else:
        send({"type": "result", "task_id": task_id, "output": data})


def main():
    tasks = queue.Queue()
    threading.Thread(target=read_stdin, args=(tasks,), daemon=True).start()
    log(f"agent {os.environ.get('AGENTPOOL_AGENT_ID', '?')} ready")
    while (task := tasks.get()) is not None:
        task_id, data, cancelled = task
        stubborn = isinstance(data, dict) and data.get("ignore_cancel")
        if stubborn or not cancelled.is_set():
            answer(task_id, data, cancelled)
        with cancels_lock:
            cancels.pop(task_id, None)
    log("stdin closed: exiting")


if __name__ == "__main__":
    main()
