"""What every other part builds on: errors, the states' contracts, the S3 layout, AWS clients, the Lambda runtime."""
