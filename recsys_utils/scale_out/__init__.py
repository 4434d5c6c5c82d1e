"""Scale-out on Apache Spark (06): the same cleaning rules, ALS, top-N and metrics on a cluster."""
