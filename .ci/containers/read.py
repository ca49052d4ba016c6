"""Reads the files the container acceptance run (.ci/containers.sh) follows.

It parses YAML, JSON and XML for the shell script, so that the script runs
docker-compose.yml, the examples/ci workflow and the fixtures as they are
written instead of repeating them. Run by Debian's /usr/bin/python3, whose
python3-yaml comes with podman-compose. Errors name the file and exit 1.
"""
import json
import sys
import xml.etree.ElementTree as ET

import yaml


def fail(msg):
    print(f"read.py: {msg}", file=sys.stderr)
    sys.exit(1)


def load_yaml(path):
    try:
        with open(path) as f:
            return yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        fail(f"{path}: {e}")


def compose_images(path):
    """service<TAB>image for every service of a compose file."""
    doc = load_yaml(path)
    for name, svc in (doc.get("services") or {}).items():
        if "image" not in svc:
            fail(f"{path}: service {name} has no image")
        print(f"{name}\t{svc['image']}")


def workflow_job(path, job):
    doc = load_yaml(path)
    jobs = doc.get("jobs") or {}
    if job not in jobs:
        fail(f"{path}: no job named {job}")
    return jobs[job]


def workflow_env(path, job):
    """NAME=value lines of the job's env block."""
    for k, v in (workflow_job(path, job).get("env") or {}).items():
        print(f"{k}={v}")


def workflow_steps(path, job):
    """name<TAB>run for every step that runs a command (one line each)."""
    for i, step in enumerate(workflow_job(path, job).get("steps") or []):
        run = step.get("run")
        if run is None:
            continue
        run = run.strip()
        if "\n" in run or "\t" in run:
            fail(f"{path}: step {step.get('name', i)}: a multi-line run; this runner takes one command line per step")
        print(f"{step.get('name', 'step %d' % i)}\t{run}")


def workflow_artifact(path, job):
    """The path the job uploads with actions/upload-artifact."""
    for step in workflow_job(path, job).get("steps") or []:
        if str(step.get("uses", "")).startswith("actions/upload-artifact@"):
            print(step["with"]["path"])
            return
    fail(f"{path}: job {job} uploads no artifact")


def fixture_cases(path):
    """How many test cases verify reports for a fixture: its channels and
    durable subscriptions (a durable queue group is one consumer)."""
    doc = load_yaml(path)
    chans = doc.get("channels") or []
    durables = sum(1 for c in chans for s in (c.get("subscriptions") or []) if s.get("durable"))
    print(len(chans) + durables)


def fixture_total(path):
    """How many messages a fixture publishes."""
    print(sum(c.get("messages", 0) for c in load_yaml(path).get("channels") or []))


def junit(path, want):
    """Checks a JUnit report holds want passing test cases."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        fail(f"{path}: {e}")
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    tests = sum(int(s.get("tests", 0)) for s in suites)
    failures = sum(int(s.get("failures", 0)) for s in suites)
    errors = sum(int(s.get("errors", 0)) for s in suites)
    summary = f"{len(suites)} suite(s), {tests} test case(s), {failures} failure(s), {errors} error(s)"
    if tests != int(want) or failures or errors:
        fail(f"{path}: {summary}; want {want} passing test cases")
    print(f"{path}: {summary}")


def jsz_messages(prefix):
    """Messages stored in streams whose name starts with prefix, from
    nats-server's /jsz?streams=true on stdin."""
    doc = json.load(sys.stdin)
    total = 0
    for acc in doc.get("account_details") or []:
        for st in acc.get("stream_detail") or []:
            if st.get("name", "").startswith(prefix):
                total += st.get("state", {}).get("messages", 0)
    print(total)


def gomod_version(module):
    """The version a go.mod requires of module, from `go mod edit -json`
    on stdin."""
    for req in json.load(sys.stdin).get("Require") or []:
        if req["Path"] == module:
            print(req["Version"])
            return
    fail(f"go.mod requires no {module}")


COMMANDS = {
    "gomod-version": gomod_version,
    "compose-images": compose_images,
    "workflow-env": workflow_env,
    "workflow-steps": workflow_steps,
    "workflow-artifact": workflow_artifact,
    "fixture-cases": fixture_cases,
    "fixture-total": fixture_total,
    "junit": junit,
    "jsz-messages": jsz_messages,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        fail("usage: read.py " + "|".join(COMMANDS) + " ARGS...")
    COMMANDS[sys.argv[1]](*sys.argv[2:])
