"""Prints scripts/api-fuzz's summary: operations tested, cases generated, what failed.

Usage: summary.py SCHEMATHESIS_OUTPUT JUNIT_XML SECONDS SEED
"""

import re
import sys
import xml.etree.ElementTree as ET

output_path, junit_path, seconds, seed = sys.argv[1:5]
text = open(output_path, errors="replace").read()


def grab(pattern, default="?"):
    found = re.search(pattern, text, re.MULTILINE)
    return found.group(1) if found else default


selected = grab(r"^\s+Selected: (\S+)")
tested = grab(r"^\s+Tested: (\d+)")
cases = grab(r"^\s+(\d+) generated")
found = grab(r"generated, (\d+) found", "0")
known = grab(r"^\s+Known failures: (\d+)", "0")

failed, errored = [], []
try:
    for case in ET.parse(junit_path).getroot().iter("testcase"):
        if case.find("failure") is not None:
            failed.append(case.get("name"))
        if case.find("error") is not None:
            errored.append(case.get("name"))
except (OSError, ET.ParseError) as e:
    print(f"api-fuzz: no JUnit report ({e})")

print(
    f"api-fuzz: {tested} operations tested ({selected} selected), {cases} cases generated, "
    f"{found} failures ({known} known, in baseline.json), {len(errored)} operations errored; "
    f"{seconds}s; seed {seed}"
)
for name in failed:
    print(f"api-fuzz:   failed:  {name}")
for name in errored:
    print(f"api-fuzz:   errored: {name}")
