"""What the reference generators (make_*_reference.py) share: importing the authors' files, hashing them, and writing tensors and cases as JSON."""
import hashlib
import importlib.util
import json
import os
import sys


def load_module(name, path):
    """Imports the file at path as module `name`, with its folder on sys.path for its own imports."""
    if not os.path.isfile(path):
        sys.exit(f"{os.path.basename(sys.argv[0])}: {path}: not there")
    folder = os.path.dirname(path)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def tensor(t):
    return {"shape": list(t.shape), "values": t.detach().flatten().tolist()}


def write_cases(path, head, cases):
    """Writes {**head, "cases": cases} with one case per line, so that a regenerated file diffs by case."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    lines = [json.dumps(head)[:-1] + ', "cases": [']
    lines += [json.dumps(c, separators=(",", ":")) + ("," if i + 1 < len(cases) else "") for i, c in enumerate(cases)]
    lines.append("]}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
