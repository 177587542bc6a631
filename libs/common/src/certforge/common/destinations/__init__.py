"""What a sync destination is, without any SDK: each kind's settings and credentials models and
the rules on them, shared by the api (which validates a sync when it is created) and the syncer
(which builds its plugins from the validated models and keeps only the SDK calls).

Keeping these pure means the api process never imports boto3, the Azure SDK, kubernetes or
hvac just to validate a configuration (Infisical keeps its destination schemas apart from its
SDK calls the same way).
"""
