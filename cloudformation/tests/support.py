"""Shared helpers for the onboarding template's tests: load the template, import its Lambda code."""

import os
import shutil
import sys
import types

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE = os.path.normpath(os.path.join(HERE, "..", "onboarding.yaml"))


class CfnLoader(yaml.SafeLoader):
    """PyYAML loader that understands CloudFormation's short-form tags (!Ref, !Sub, ...)."""


def _short_form(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {"Fn::" + suffix: value}


CfnLoader.add_multi_constructor("!", _short_form)


def load_template(path=TEMPLATE):
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=CfnLoader)  # noqa: S506 - CfnLoader is a SafeLoader


def template_text(path=TEMPLATE):
    with open(path, encoding="utf-8") as f:
        return f.read()


def callback_source(template=None):
    template = template or load_template()
    return template["Resources"]["CallbackFunction"]["Properties"]["Code"]["ZipFile"]


def load_callback_module():
    """Import the Lambda's inline code as a fresh module (as Lambda would, as `index`)."""
    module = types.ModuleType("index")
    module.__file__ = TEMPLATE + "#CallbackFunction"
    exec(compile(callback_source(), module.__file__, "exec"), module.__dict__)  # noqa: S102
    return module


def venv_tool(name):
    """A console script installed next to this interpreter (the test venv), else on PATH."""
    candidate = os.path.join(os.path.dirname(sys.executable), name)
    if os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found next to {sys.executable} nor on PATH")
    return found
