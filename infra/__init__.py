"""The AWS CDK app that deploys cognito-backuper: storage, functions, state machines, schedule and alarms."""
