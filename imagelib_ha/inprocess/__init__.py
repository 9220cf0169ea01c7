"""Running the Pulumi program in this process, without the Pulumi CLI: recording mocks for tests and
policies, and executing mocks that run the real dynamic providers against a lab or a region."""
