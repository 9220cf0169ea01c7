# The README's two commands are `make up` and `make test`; every other target supports them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
LAB_VENV := .venv-lab
# The stack to deploy: Pulumi.$(STACK).yaml (`make up STACK=lab-cinder` for the Block Storage variant).
STACK ?= lab

.PHONY: setup venv lab-venv up preview refresh down test lint bench lab-up lab-down lab-status doctor

setup: venv lab-venv

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip setuptools wheel
	$(VENV)/bin/pip install -q -e '.[test,lint]'
	touch $@

lab-venv: $(LAB_VENV)/.installed
$(LAB_VENV)/.installed: lab/requirements.txt
	$(PYTHON) -m venv $(LAB_VENV)
	$(LAB_VENV)/bin/pip install -q --upgrade pip setuptools wheel
	$(LAB_VENV)/bin/pip install -q -r lab/requirements.txt
	touch $@

## Deploy the program to the embedded lab (starts the lab if needed).
up: setup
	$(PY) -m imagelib_ha.deploy up --stack $(STACK)

## What `make up` would change on the running lab, touching nothing (check + diff of every resource).
preview: venv
	$(PY) -m imagelib_ha.deploy preview --stack $(STACK)

## Read every deployed resource, show the drift (gone, changed outputs) and record what is live.
refresh: venv
	$(PY) -m imagelib_ha.deploy refresh --stack $(STACK)

## Destroy what `make up` created and stop the lab.
down: venv
	$(PY) -m imagelib_ha.deploy down --stack $(STACK)

## Every test: unit, program under mocks, policies, lab integration, provider contract, drills.
test: setup
	$(PY) -m pytest

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: setup
	$(PY) -m bench

lab-up: setup
	$(PY) -m lab up
lab-down: venv
	$(PY) -m lab down
lab-status: venv
	$(PY) -m lab status

## On-call check of the running lab, read-only (exit 0 healthy, 1 unhealthy, 2 degraded/unknown).
doctor: venv
	eval "$$($(PY) -m imagelib_ha.deploy env)" && $(PY) -m imagelib_ha doctor --stack lab
