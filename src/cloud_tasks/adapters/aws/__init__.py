"""AWS adapters (boto3): SQS, EC2, Pricing API, IMDSv2. Imported only when used."""
