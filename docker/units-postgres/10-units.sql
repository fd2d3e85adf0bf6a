-- The simulated PostgreSQL units, one database each (monitoring is POSTGRES_DB); `datashare seed` fills them.
CREATE DATABASE catalogues;
CREATE DATABASE land;
CREATE DATABASE water_quality;
