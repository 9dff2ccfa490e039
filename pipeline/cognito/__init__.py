"""Reading Cognito within its quotas: paging, the rate budget, pool configuration, shard planning."""
