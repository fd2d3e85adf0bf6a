-- The simulated MariaDB units, one database each (water_resources is MARIADB_DATABASE); `datashare seed` fills them.
CREATE DATABASE IF NOT EXISTS public_services CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
