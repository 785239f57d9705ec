"""What deploys: template.yaml through the SAM transform, then CloudFormation's conditions.

usage: transform.py TEMPLATE [NAME=VALUE ...]

Prints, as JSON, the CloudFormation template that a stack with those parameter values would
create. Two steps, as in a real deploy:

1. The SAM transform, offline, by the `samtranslator` package the SAM CLI installs: the same
   code as the AWS::Serverless transform that `sam deploy` has CloudFormation run.
2. What CloudFormation then does with the parameters: conditions evaluated, resources whose
   condition is false left out, `Fn::If`, `AWS::NoValue`, `Ref` to parameters and pseudo
   parameters (the stack is `STACK_NAME` in `us-east-1`), `Fn::Join`, `Fn::Split` and the
   parameters in `Fn::Sub` resolved. Everything else (`Fn::GetAtt`, `Ref` to resources, and a
   `Fn::Sub` that names a resource, kept with what could be substituted) is kept.
"""

import json
import os
import re
import sys

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from samcli.yamlhelper import yaml_parse  # noqa: E402  (reads CloudFormation's !Tags)
from samtranslator.parser.parser import Parser  # noqa: E402
from samtranslator.translator.translator import Translator  # noqa: E402

NO_VALUE = object()

STACK_NAME = "braze-test"
PSEUDO_PARAMETERS = {
    "AWS::StackName": STACK_NAME,
    "AWS::Region": "us-east-1",
    "AWS::Partition": "aws",
    "AWS::AccountId": "123456789012",
    "AWS::URLSuffix": "amazonaws.com",
}


def sam_transform(template: dict, parameters: dict) -> dict:
    # `sam deploy` first uploads each function's code and points CodeUri at the upload.
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://deployment-bucket/function.zip"
    translator = Translator(managed_policy_map={}, sam_parser=Parser())
    return translator.translate(sam_template=template, parameter_values=dict(parameters))


def parameter_values(template: dict, given: dict) -> dict:
    """Defaults filled in; list-typed parameters as lists, as CloudFormation passes them."""
    values = {}
    for name, spec in template.get("Parameters", {}).items():
        value = given.get(name, spec.get("Default", ""))
        kind = spec.get("Type", "String")
        if kind == "CommaDelimitedList" or kind.startswith("List<"):
            value = [] if value == "" else [v.strip() for v in str(value).split(",")]
        values[name] = value
    unknown = set(given) - set(values)
    if unknown:
        raise SystemExit(f"transform.py: no such parameters: {', '.join(sorted(unknown))}")
    return values


class Resolver:
    def __init__(self, template: dict, parameters: dict):
        self.parameters = {**PSEUDO_PARAMETERS, **parameters}
        self.condition_specs = template.get("Conditions", {})
        self.conditions: dict = {}

    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            self.conditions[name] = bool(self.value(self.condition_specs[name]))
        return self.conditions[name]

    def value(self, node):
        """The node with every intrinsic this script knows replaced by its value."""
        if isinstance(node, list):
            resolved = (self.value(v) for v in node)
            return [v for v in resolved if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                if arg == "AWS::NoValue":
                    return NO_VALUE
                if arg in self.parameters:
                    return self.parameters[arg]
                return node
            if key == "Fn::Sub":
                return self.sub(arg)
            if key == "Condition" and isinstance(arg, str):
                return self.condition(arg)
            if key == "Fn::If":
                name, then, otherwise = arg
                return self.value(then if self.condition(name) else otherwise)
            if key == "Fn::Equals":
                left, right = (self.value(v) for v in arg)
                return left == right
            if key == "Fn::Not":
                return not self.value(arg[0])
            if key == "Fn::And":
                return all(self.value(v) for v in arg)
            if key == "Fn::Or":
                return any(self.value(v) for v in arg)
            if key == "Fn::Join":
                separator, parts = self.value(arg[0]), self.value(arg[1])
                if isinstance(parts, list) and all(isinstance(p, str) for p in parts):
                    return separator.join(parts)
                return {key: [separator, parts]}
            if key == "Fn::Split":
                separator, text = self.value(arg[0]), self.value(arg[1])
                if isinstance(text, str):
                    return text.split(separator)
                return {key: [separator, text]}
        resolved = {k: self.value(v) for k, v in node.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def sub(self, arg):
        """`Fn::Sub`: a string if every `${NAME}` is a parameter (or one of the given variables),
        else the `Fn::Sub` with those substituted and the rest (resources) left."""
        text, variables = (arg, {}) if isinstance(arg, str) else arg
        known = {**self.parameters, **{k: self.value(v) for k, v in variables.items()}}
        unresolved = False

        def replace(match):
            nonlocal unresolved
            name = match.group(1)
            if name.startswith("!"):
                return match.group(0)
            value = known.get(name)
            if isinstance(value, str):
                return value
            unresolved = True
            return match.group(0)

        text = re.sub(r"\$\{([^}]+)\}", replace, text)
        if unresolved:
            return {"Fn::Sub": text}
        # `${!Literal}` stands for the text `${Literal}`.
        return text.replace("${!", "${")

    def template(self, template: dict) -> dict:
        resources = {}
        for name, resource in template.get("Resources", {}).items():
            condition = resource.get("Condition")
            if condition is None or self.condition(condition):
                resources[name] = self.value(resource)
        outputs = {}
        for name, output in template.get("Outputs", {}).items():
            condition = output.get("Condition")
            if condition is None or self.condition(condition):
                outputs[name] = self.value(output)
        return {"Resources": resources, "Outputs": outputs}


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        template = yaml_parse(f.read())
    given = dict(pair.partition("=")[::2] for pair in sys.argv[2:])
    parameters = parameter_values(template, given)
    transformed = sam_transform(template, given)
    deployed = Resolver(transformed, parameters).template(transformed)
    json.dump(deployed, sys.stdout, indent=1, sort_keys=True, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
