-- Run once by the postgres image on an empty volume: one database for freshrec, one for Prefect's server.
CREATE DATABASE freshrec;
CREATE DATABASE prefect;
